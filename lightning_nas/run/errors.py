"""Turn what jsonargparse and Lightning make of the project's errors back into one readable line.

jsonargparse and Lightning wrap a ``LightningNASError`` raised inside a link, an instantiation or a
type check into their own exceptions and long multi-part messages; ``train.py`` and the experiment
runner print one line instead.
"""
from __future__ import annotations

import re

from lightning_nas.errors import LightningNASError


def concise(message: str) -> str:
    """jsonargparse reports a failing subclass as every Union member's error, and a failing link
    (e.g. the DataModule loading its data to tell the model its classes) with the link's
    internals; keep the real cause."""
    message = re.sub(r"Call to compute_fn of link .*? failed: ", "", str(message), flags=re.S)
    message = re.sub(r"Not of type (?:Positive|NonNegative)(Int|Float): (?:(\S+) )?does not conform to restriction "
                     r"v(>=?)0", lambda m: f"expected a{'n integer' if m.group(1) == 'Int' else ' number'} "
                     f"{m.group(3)} 0" + (f", got {m.group(2)}" if m.group(2) else ""), message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return str(message)
    causes: list[list[str]] = []
    for line in lines[1:]:
        if line.startswith("- "):
            causes.append([line[2:]])
        elif causes and not line.startswith(("Given value", "Subtypes:", "Errors:", "Does not validate")):
            causes[-1].append(line)
    real = [" ".join(c) for c in causes if "Expected a <class 'NoneType'>" not in c[0]]
    if not real:
        return " ".join(lines)
    head = lines[0] if lines[0].startswith("Parser key") else ""
    return " ".join(filter(None, [head, "; ".join(real)]))


def unknown_option(raw: str, cause: str) -> str | None:
    """jsonargparse's ``Option 'lr' is not accepted`` (under ``Parser key "model"``) as the whole key, with
    its new name when the key was renamed (``lightning_nas.run.validation.RENAMED_KEYS``); None otherwise."""
    from lightning_nas.run.validation import renamed

    option = re.search(r"Option '([^']+)' is not accepted", cause) or re.search(r"Option '([^']+)' is not accepted", raw)
    section = re.search(r'Parser key "([^"]+)"', raw)
    if option is None or section is None:
        return None
    key = f"{section.group(1)}.init_args.{option.group(1)}"
    new = renamed(key)
    if new is not None:
        return f"{key} was renamed: use {new} (--{new.split()[0]} on the command line)"
    return (f"{key} is not an option of the {section.group(1)} class; "
            f"`python train.py --{section.group(1)}.help CLASS` lists its options")


def project_error(error: BaseException) -> LightningNASError | None:
    """The project's own error behind ``error`` (itself, or what jsonargparse or Lightning wrapped), else None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, LightningNASError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def first_line(error: BaseException) -> str:
    """The first line of a third-party error's message (its type name when the message is empty)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
