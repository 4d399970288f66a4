"""NAO's parts against the authors' own (renqianluo/NAO_pytorch, ``NAO_V1/encoder.py`` and ``decoder.py``),
with the same weights on CPU: the encoder's states, the embedding, the predictor, the Eq. 3 step and the
decoder's teacher-forced log-probabilities (renormalised over each position's allowed tokens, which ours
restricts to and theirs masks only when picking).

    python tests/compare_nao_authors.py PATH/TO/NAO_pytorch/NAO_V1

Not collected by pytest: it needs the authors' checkout, which the repository does not ship.
"""
import sys

import torch

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "NAO_V1")
from decoder import Decoder as AuthorsDecoder  # noqa: E402  (the authors' modules)
from encoder import Encoder as AuthorsEncoder  # noqa: E402

from lightning_nas.spaces.nb201 import NB201Space  # noqa: E402
from lightning_nas.strategies.nao_model import EncoderPredictorDecoder  # noqa: E402

torch.manual_seed(0)
space = NB201Space()
H = 96
ours = EncoderPredictorDecoder(space.decisions, hidden=H, layers=1, mlp_hidden=200, mlp_layers=3, mlp_dropout=0.1).eval()
T, V = ours.tokens.length, ours.tokens.vocabulary
theirs = AuthorsEncoder(1, V, H, 0.0, T, T, H, 3, 200, 0.1).eval()
with torch.no_grad():
    theirs.embedding.weight.copy_(ours.encoder.embedding.weight)
    theirs.rnn.load_state_dict(ours.encoder.lstm.state_dict())
    for i, layer in enumerate(ours.predictor.layers):
        getattr(theirs.mlp, f"layer_{i}")[0].load_state_dict(layer.state_dict())
    theirs.regressor.load_state_dict(ours.predictor.output.state_dict())
picks = [space.to_decisions(a) for a in space.sample_many(50, torch.Generator().manual_seed(1))]
x = ours.tokens.encode(picks)
out_t, _, emb_t, pred_t = theirs(x)
out_o, emb_o = ours.encoder(x)
print("encoder states max |diff|", (out_t - out_o).abs().max().item())
print("embedding max |diff|", (emb_t - emb_o).abs().max().item())
print("prediction max |diff|", (pred_t.squeeze(-1) - ours.predictor(emb_o)).abs().max().item())
for eta in (1.0, 5.0):
    *_, new_out_t, new_emb_t = theirs.infer(x, eta, direction="+")
    decoded, before, after = ours.improve(x, eta)
    after_t = torch.sigmoid(theirs.regressor(theirs.mlp(new_emb_t))).squeeze(-1)
    print(f"eta {eta}: f after step max |diff|", (after_t - after).abs().max().item(), "mean f before/after", before.mean().item(), after.mean().item())
# decoder under teacher forcing: same LSTM, attention and output layer; the authors' log-softmax is over the
# whole vocabulary (their CNN-specific masking happens only when picking symbols), ours over the allowed tokens
dec_t = AuthorsDecoder(1, V + 1, H, 0.0, T, T)   # their token 0 is SOS/EOS: our ids + 1
with torch.no_grad():
    dec_t.rnn.load_state_dict(ours.decoder.lstm.state_dict())
    dec_t.attention.input_proj.weight.copy_(ours.decoder.attention.query.weight)
    dec_t.attention.output_proj.weight.copy_(ours.decoder.attention.combine.weight)
    dec_t.embedding.weight[1:].copy_(ours.decoder.embedding.weight)
    dec_t.embedding.weight[0].copy_(ours.decoder.start.reshape(-1))
    dec_t.out.weight.zero_()
    dec_t.out.bias.fill_(-1e9)
    dec_t.out.weight[1:].copy_(ours.decoder.head.weight)
    dec_t.out.bias[1:].copy_(ours.decoder.head.bias)
inputs = torch.cat([torch.zeros(len(x), 1, dtype=torch.long), x[:, :-1] + 1], 1)
h = emb_o.detach().unsqueeze(0)
outs, _, _ = dec_t(inputs, (h, h), out_o.detach())
logp_t = torch.stack(outs, 1)[..., 1:]
log_o, _ = ours.decoder(emb_o.detach(), out_o.detach(), x)
# compare the log-probabilities of the true tokens renormalised over each position's allowed set
mask = torch.isfinite(log_o)
renorm_t = torch.log_softmax(logp_t.masked_fill(~mask, float("-inf")), -1)
print("decoder log p(target) max |diff|", (renorm_t.gather(-1, x.unsqueeze(-1)) - log_o.gather(-1, x.unsqueeze(-1))).abs().max().item())
