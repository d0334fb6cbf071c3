"""Constrained answers for the local model: every code is decided by the model's own probability,
and only the rationale is free text.

A tiny model asked to write a list of codes copies the codebook's order. Instead, after the
prompt (system + user, from the KV cache) the assistant turn is started once per code with
`Code "<id>" (<name>) applies:` and the probabilities of " yes" and " no" are read off, for all
codes in one batched forward pass. A code is chosen when P(yes) >= 0.5, and P(yes) is its
confidence (a real probability, not a number the model writes). Then the rationale is written
after `{"codes": [...], "rationale": "` up to the closing quote. The answer is assembled with
json.dumps, so it is always valid JSON and only has codebook ids.
"""

from __future__ import annotations

import copy
import json

import torch

YES = (" yes", "yes", " Yes", "Yes")
NO = (" no", "no", " No", "No")


def _token_ids(tokenizer, words: tuple[str, ...]) -> list[int]:
    ids = {tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
    return sorted(ids)


def _feed(model, ids: torch.Tensor, cache, keep: int | torch.Tensor = 1) -> tuple[torch.Tensor, object]:
    """Run `ids` after `cache`; logits only at the last `keep` positions, or at the positions a
    tensor lists (a 2,500-token prompt's logits over a 150k vocabulary would take 1.5 GB)."""
    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=keep)
    return out.logits, out.cache


def code_probabilities(model, tokenizer, cache, probes: dict[str, str]) -> dict[str, float]:
    """P(yes) for each probe text fed after `cache` (batched; right padding is harmless: causal)."""
    encoded = {code: tokenizer.encode(text, add_special_tokens=False) for code, text in probes.items()}
    width = max(len(ids) for ids in encoded.values())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = torch.tensor([ids + [pad] * (width - len(ids)) for ids in encoded.values()], dtype=torch.long)
    batched = copy.deepcopy(cache)
    batched.batch_repeat_interleave(len(encoded))
    # logits only at the positions where some probe ends
    ends = sorted({len(ids) - 1 for ids in encoded.values()})
    logits, _ = _feed(model, batch, batched, keep=torch.tensor(ends))
    yes, no = _token_ids(tokenizer, YES), _token_ids(tokenizer, NO)
    result = {}
    for row, (code, ids) in enumerate(encoded.items()):
        probs = torch.softmax(logits[row, ends.index(len(ids) - 1)].float(), dim=-1)
        p_yes, p_no = float(probs[yes].sum()), float(probs[no].sum())
        result[code] = p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.0
    return result


def write_rationale(model, tokenizer, cache, start: str, max_tokens: int) -> str:
    """Greedy free text after `start`, up to the closing quote or the end of the turn."""
    logits, cache = _feed(model, torch.tensor([tokenizer.encode(start, add_special_tokens=False)]), cache)
    configured = getattr(model.generation_config, "eos_token_id", None)
    eos = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    pieces: list[int] = []
    for _ in range(max_tokens):
        token = int(torch.argmax(logits[0, -1]))
        if token in eos:
            break
        pieces.append(token)
        if '"' in tokenizer.decode([token]):
            break
        logits, cache = _feed(model, torch.tensor([[token]]), cache)
    return " ".join(tokenizer.decode(pieces, skip_special_tokens=True).split('"')[0].split())


def constrained_answer(
    model,
    tokenizer,
    ids: torch.Tensor,
    cache,
    codes: dict[str, str],
    max_codes: int,
    max_tokens: int,
    threshold: float = 0.5,
) -> tuple[str, int]:
    """The JSON answer for the prompt `ids` (after `cache`); `codes` maps id -> name."""
    _, cache = _feed(model, ids, cache)
    probes = {c: f'Code "{c}" ({name}) applies:' for c, name in codes.items()}
    scores = code_probabilities(model, tokenizer, cache, probes)
    ranked = sorted((c for c in codes if scores[c] >= threshold), key=lambda c: -scores[c])[:max_codes]
    chosen = [c for c in codes if c in ranked]
    start = json.dumps({"codes": chosen})[:-1] + ', "rationale": "'
    rationale = write_rationale(model, tokenizer, cache, start, max(8, min(max_tokens, 24)))
    answer = {
        "codes": chosen,
        "confidence": {c: round(scores[c], 4) for c in chosen},
        "scores": {c: round(scores[c], 4) for c in codes},
        "rationale": rationale or "no reason given",
    }
    return json.dumps(answer, ensure_ascii=False), len(rationale.split())
