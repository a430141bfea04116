"""The checks of a C2SP tlog-witness `add-checkpoint` request, pure (no I/O), in the spec's order.

The body is ``old <size>``, up to 63 consistency proof hashes in base64 (one a line), an empty
line, then the log's signed checkpoint note. The answers:

- 400: the body is malformed, or the old size is above the checkpoint's size;
- 404: the checkpoint's origin is not a log this witness was configured with;
- 403: no signature on it verifies with that log's keys (signatures by unknown keys are ignored);
- 409 with ``text/x.tlog.size``: the old size is not the size this witness last cosigned;
- 409: the same size as last cosigned with another root hash (a rewritten log);
- 422: the consistency proof from the last cosigned checkpoint does not verify (a rewritten log).

Only a request that passes all of them is cosigned, after the new state is stored.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from services.shared.merkle import verify_consistency
from services.shared.signed_note import Checkpoint, NoteError, Verifier, note_signed_by, parse_checkpoint, split_note
from services.witness.store import Recorded

MAX_PROOF_LINES = 63
SIZE_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class AddCheckpoint:
    old: int
    proof: list[bytes]
    note: str  # the signed note as sent
    body: str  # its checkpoint text, the part that is cosigned
    checkpoint: Checkpoint


class Refused(Exception):
    """An answer other than a cosignature: HTTP status, plain-text body, and whether the request
    shows the log rewritten (a known log, its own valid signature, and a history that does not
    extend the one cosigned before)."""

    def __init__(self, status: int, message: str, content_type: str = "text/plain", rewrite: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.content_type = content_type
        self.rewrite = rewrite


def _decimal(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or (text != "0" and text.startswith("0")):
        return None
    return int(text)


def parse_request(raw: bytes) -> AddCheckpoint:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "请求不是 UTF-8 文本 (the body is not UTF-8 text)") from None
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old "):
        raise Refused(
            400,
            "请求应以 old 行开头，证明之后空一行再接检查点 "
            "(expected 'old N', proof lines, an empty line, a checkpoint)",
        )
    old = _decimal(lines[0][4:])
    if old is None:
        raise Refused(400, "old 行的大小应为不带前导零的十进制数 (the old size is a decimal without leading zeroes)")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refused(400, f"一致性证明最多 {MAX_PROOF_LINES} 行 (at most {MAX_PROOF_LINES} proof lines)")
    proof = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            digest = base64.b64decode(line, validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) != 32:
            raise Refused(400, f"第 {number} 行不是 base64 的 32 字节哈希 (line {number} is not a base64 32-byte hash)")
        proof.append(digest)
    try:
        body, _ = split_note(note)
        checkpoint = parse_checkpoint(body)
    except NoteError as exc:
        raise Refused(400, f"检查点格式不对 (not a signed checkpoint: {exc})") from None
    return AddCheckpoint(old, proof, note, body, checkpoint)


def check(request: AddCheckpoint, trusted: dict[str, list[Verifier]], state: Recorded | None) -> None:
    """Raise Refused unless the checkpoint may be cosigned on top of `state` (None: never cosigned)."""
    cp = request.checkpoint
    keys = trusted.get(cp.origin)
    if not keys:
        raise Refused(404, f"本见证人不见证此日志 (unknown log origin {cp.origin!r})")
    if not any(note_signed_by(request.note, key) is not None for key in keys):
        raise Refused(403, f"检查点没有 {cp.origin} 的有效签名 (no valid signature by a key of {cp.origin})")
    if request.old > cp.size:
        raise Refused(400, f"old {request.old} 大于检查点大小 {cp.size} (old size above the checkpoint's size)")
    recorded = state.size if state is not None else 0
    if request.old != recorded:
        raise Refused(409, f"{recorded}\n", SIZE_TYPE)
    if request.old == 0:
        if request.proof:
            raise Refused(400, "old 为 0 时一致性证明应为空 (the proof must be empty when the old size is 0)")
        return
    assert state is not None  # old == recorded > 0
    if request.old == cp.size:
        if request.proof:
            raise Refused(400, "大小未变时一致性证明应为空 (the proof must be empty when the size is unchanged)")
        if cp.root != state.root:
            raise Refused(
                409,
                f"已联署的检查点 {state.size} 的根哈希不同：日志被改写 "
                f"(size {state.size} was cosigned with another root hash: the log was rewritten)",
                rewrite=True,
            )
        return
    if not verify_consistency(state.size, cp.size, state.root, cp.root, request.proof):
        raise Refused(
            422,
            f"从已联署的 {state.size} 到 {cp.size} 的一致性证明不成立：日志被改写 "
            f"(the consistency proof from the cosigned size {state.size} to {cp.size} does not verify: "
            "the log was rewritten)",
            rewrite=True,
        )
