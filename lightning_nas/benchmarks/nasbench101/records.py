"""The rows of the official NAS-Bench-101 files: JSON lists holding a base64 ``ModelMetrics`` protobuf.

Each TFRecord is the UTF-8 JSON list ``[module_hash, epochs, adjacency, operations, metrics]``:
the cell's graph hash, the epoch budget (4, 12, 36 or 108), the row-major 0/1 adjacency string,
the comma-separated operations, and the base64 of a serialised ``nasbench.ModelMetrics``. One
record per (cell, budget, repeat); three repeats per cell and budget.

The message definition (``nasbench/lib/model_metrics.proto``, proto2) is stated here with
protobuf's descriptor API rather than generated code: two small messages, no ``protoc`` step, and
the maintained protobuf runtime does the wire decoding (unknown fields are skipped, so a future
field cannot break the reader)::

    message ModelMetrics   { repeated EvaluationData evaluation_data = 1; optional int32 trainable_parameters = 2;
                             optional double total_time = 3; }
    message EvaluationData { optional double current_epoch = 1; optional double training_time = 2;
                             optional double train_accuracy = 3; optional double validation_accuracy = 4;
                             optional double test_accuracy = 5; optional string checkpoint_path = 6; }

``evaluation_data`` holds the evaluations at the start, halfway and end of training (index 1 is
the halfway point, 2 the end, as the official API reads them).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import lru_cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from lightning_nas.errors import GroundTruthError

_D = descriptor_pb2.FieldDescriptorProto


@lru_cache(maxsize=1)
def _classes():
    f = descriptor_pb2.FileDescriptorProto(name="lightning_nas_nasbench_model_metrics.proto", package="nasbench", syntax="proto2")
    ev = f.message_type.add(name="EvaluationData")
    for number, name in enumerate(("current_epoch", "training_time", "train_accuracy", "validation_accuracy", "test_accuracy"), 1):
        ev.field.add(name=name, number=number, type=_D.TYPE_DOUBLE, label=_D.LABEL_OPTIONAL)
    ev.field.add(name="checkpoint_path", number=6, type=_D.TYPE_STRING, label=_D.LABEL_OPTIONAL)
    mm = f.message_type.add(name="ModelMetrics")
    mm.field.add(name="evaluation_data", number=1, type=_D.TYPE_MESSAGE, label=_D.LABEL_REPEATED,
                 type_name=".nasbench.EvaluationData")
    mm.field.add(name="trainable_parameters", number=2, type=_D.TYPE_INT32, label=_D.LABEL_OPTIONAL)
    mm.field.add(name="total_time", number=3, type=_D.TYPE_DOUBLE, label=_D.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.EvaluationData")))


def message_classes():
    """The ``(ModelMetrics, EvaluationData)`` message classes."""
    return _classes()


#: per-record metric columns, in cache order
METRICS = ("halfway_training_time", "halfway_train_accuracy", "halfway_validation_accuracy", "halfway_test_accuracy",
           "final_training_time", "final_train_accuracy", "final_validation_accuracy", "final_test_accuracy")


@dataclass(frozen=True)
class Row:
    hash: str
    epochs: int
    adjacency: str
    operations: str
    trainable_parameters: int
    metrics: tuple[float, ...]  # in METRICS order


def parse_row(data: bytes, where: str = "") -> Row:
    """One official record; GroundTruthError naming ``where`` (file, record) if it is not a row."""
    try:
        module_hash, epochs, adjacency, operations, raw = json.loads(data.decode("utf-8"))
        metrics = _classes()[0].FromString(base64.b64decode(raw))
        half, final = metrics.evaluation_data[1], metrics.evaluation_data[2]
    except Exception as exc:  # malformed JSON, base64, protobuf or too few evaluations
        raise GroundTruthError(f"{where}: not a NAS-Bench-101 row ({type(exc).__name__}: {exc})") from None
    values = (half.training_time, half.train_accuracy, half.validation_accuracy, half.test_accuracy,
              final.training_time, final.train_accuracy, final.validation_accuracy, final.test_accuracy)
    return Row(str(module_hash), int(epochs), str(adjacency), str(operations), int(metrics.trainable_parameters), values)


def encode_row(module_hash: str, epochs: int, adjacency: str, operations: str, trainable_parameters: int,
               halfway: tuple[float, float, float, float], final: tuple[float, float, float, float],
               total_time: float = 0.0) -> bytes:
    """An official-format record (tests and synthetic files): ``halfway``/``final`` = (time, train, valid, test)."""
    model_metrics, evaluation = _classes()
    m = model_metrics(trainable_parameters=trainable_parameters, total_time=total_time)
    m.evaluation_data.append(evaluation(current_epoch=0.0, training_time=0.0, train_accuracy=0.1,
                                        validation_accuracy=0.1, test_accuracy=0.1, checkpoint_path=""))
    for epoch, (t, tr, va, te) in ((epochs / 2, halfway), (float(epochs), final)):
        m.evaluation_data.append(evaluation(current_epoch=epoch, training_time=t, train_accuracy=tr,
                                            validation_accuracy=va, test_accuracy=te,
                                            checkpoint_path=f"gs://bucket/{module_hash}/repeat/model.ckpt-{int(epoch)}"))
    raw = base64.b64encode(m.SerializeToString()).decode("ascii")
    return json.dumps([module_hash, epochs, adjacency, operations, raw]).encode("utf-8")
