"""Constrained answers for the local model: every code is decided by the model's own probability,
and only the rationale is free text.

A tiny model asked to write a list of codes copies the codebook's order. Instead, after the
prompt (system + user, from the KV cache) the assistant turn is started once per code with
`Code "<id>" (<name>) applies:` and the probabilities of " yes" and " no" are read off, for all
codes in one batched forward pass. A code is chosen when P(yes) >= 0.5, and P(yes) is its
confidence (a real probability, not a number the model writes). Each chosen code's evidence is
the clause of the segment (found between <segment> tags in the prompt) the model finds likeliest
after `"evidence": {"<id>": "`, so it is always a real quote. Then the rationale is written
after `{"codes": [...], "evidence": {...}, "rationale": "` up to the closing quote. The answer is
assembled with json.dumps, so it is always valid JSON and only has codebook ids.
"""

from __future__ import annotations

import copy
import json
import re

import torch

YES = (" yes", "yes", " Yes", "Yes")
NO = (" no", "no", " No", "No")
SEGMENT = re.compile(r"<segment>(.*?)</segment>", re.S)
QUOTE_WORDS = 20  # longer clauses are cut into pieces of this many words
MAX_QUOTES = 16  # candidate quotes scored per code


def _token_ids(tokenizer, words: tuple[str, ...]) -> list[int]:
    ids = {tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
    return sorted(ids)


def _feed(model, ids: torch.Tensor, cache, keep: int | torch.Tensor = 1) -> tuple[torch.Tensor, object]:
    """Run `ids` after `cache`; logits only at the last `keep` positions, or at the positions a
    tensor lists (a 2,500-token prompt's logits over a 150k vocabulary would take 1.5 GB)."""
    if isinstance(keep, torch.Tensor):
        keep = keep.to(model.device)
    out = model(input_ids=ids.to(model.device), cache=cache, use_cache=True, logits_to_keep=keep)
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


ROLES = {"system", "user", "assistant"}


def segment_in_prompt(tokenizer, ids: torch.Tensor) -> str:
    """The segment being labelled: the text of the prompt's last <segment>...</segment>; in a prompt
    without those tags (not one of ours), the prompt's own lines."""
    text = tokenizer.decode(ids[0].tolist())
    found = SEGMENT.findall(text)
    if found:
        return " ".join(found[-1].split())
    plain = tokenizer.decode(ids[0].tolist(), skip_special_tokens=True)
    return " ".join(line.strip() for line in plain.splitlines() if line.strip() and line.strip() not in ROLES)


def candidate_quotes(segment: str) -> list[str]:
    """The segment's clauses (long ones cut into pieces) as the quotes evidence can be chosen from."""
    quotes: list[str] = []
    for clause in re.split(r"(?<=[.!?;:,])\s+|\s+[-\u2013\u2014]+\s+", segment):
        words = clause.split()
        for start in range(0, len(words), QUOTE_WORDS):
            piece = " ".join(words[start : start + QUOTE_WORDS]).strip(" ,;:")
            if len(piece) >= 3 and piece not in quotes:
                quotes.append(piece)
    return quotes[:MAX_QUOTES]


def likeliest_quote(model, tokenizer, cache, prefix: str, quotes: list[str]) -> str:
    """The quote with the highest mean log-probability (closing quote mark included) after `prefix`."""
    prefix_ids = tokenizer.encode(prefix, add_special_tokens=False)
    _, cache = _feed(model, torch.tensor([prefix_ids[:-1]]), copy.deepcopy(cache))
    bodies = [tokenizer.encode(q + '"', add_special_tokens=False) for q in quotes]
    width = 1 + max(len(b) for b in bodies)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = torch.tensor([[prefix_ids[-1], *b] + [pad] * (width - 1 - len(b)) for b in bodies], dtype=torch.long)
    cache.batch_repeat_interleave(len(bodies))
    logits, _ = _feed(model, batch, cache, keep=0)  # 0: logits at every position
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    means = [float(logprobs[row, torch.arange(len(b)), torch.tensor(b)].mean()) for row, b in enumerate(bodies)]
    return quotes[max(range(len(quotes)), key=means.__getitem__)]


def choose_evidence(model, tokenizer, ids: torch.Tensor, cache, chosen: list[str]) -> dict[str, str]:
    """Per chosen code, the likeliest of the segment's clauses."""
    quotes = candidate_quotes(segment_in_prompt(tokenizer, ids))
    head = json.dumps({"codes": chosen})[:-1] + ', "evidence": {'
    return {c: likeliest_quote(model, tokenizer, cache, f'{head}"{c}": "', quotes) for c in chosen if quotes}


def rationale_lead(chosen: list[str], names: dict[str, str]) -> str:
    """The rationale's first words: a small model left to start it copies the segment or the prompt."""
    if not chosen:
        return "No code applies: the turn is about "
    return f"{' and '.join(names[c] for c in chosen[:2]).capitalize()}: the turn is about "


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
    evidence = choose_evidence(model, tokenizer, ids, cache, chosen)
    lead = rationale_lead(chosen, codes)
    start = json.dumps({"codes": chosen, "evidence": evidence})[:-1] + f', "rationale": "{lead}'
    rationale = f"{lead}{write_rationale(model, tokenizer, cache, start, max(8, min(max_tokens, 24)))}".strip()
    answer = {
        "codes": chosen,
        "confidence": {c: round(scores[c], 4) for c in chosen},
        "scores": {c: round(scores[c], 4) for c in codes},
        "evidence": evidence,
        "rationale": rationale or "no reason given",
    }
    return json.dumps(answer, ensure_ascii=False), len(rationale.split())
