"""policyflow evidence: upload, list and download an assignment's evidence files (佐证材料).

`policyflow report --evidence FILE` uploads with `upload` first and reports the hashes the
service answered.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import httpx
import typer
from rich.table import Table

from services.cli.client import RETRIES, Client, Config
from services.cli.common import AsJson, Assignment, Token, console, emit, escape, handled
from services.cli.errors import ApiError

app = typer.Typer(no_args_is_help=True, help="Evidence files (佐证材料) of an assignment.")
CHUNK = 1 << 20


def _url(c: Client, assignment: str, sha256: str = "") -> str:
    return f"{c.config.urls['progress']}/v1/assignments/{assignment}/evidence" + (f"/{sha256}" if sha256 else "")


def _headers(c: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.config.token}"} if c.config.token else {}


def _refused(resp: httpx.Response) -> ApiError:
    try:
        body = resp.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    return ApiError(resp.status_code, detail if isinstance(detail, str) else resp.text.strip()[:300])


def _send(c: Client, assignment: str, path: Path) -> httpx.Response:
    """One upload, retried after a timeout or a busy service (the same content is stored once)."""
    url = _url(c, assignment)
    for attempt in range(RETRIES):
        try:
            with path.open("rb") as f:
                resp = c.http.post(url, files={"file": (path.name, f)}, headers=_headers(c))
        except OSError as exc:
            raise ApiError(0, f"cannot read evidence {path}: {exc.strerror}") from exc
        except httpx.TimeoutException as exc:
            if attempt + 1 < RETRIES:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise ApiError(0, f"the progress service did not answer in time while uploading {path.name}") from exc
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the progress service at {url}: {exc}") from exc
        if resp.status_code in (502, 503, 504) and attempt + 1 < RETRIES:
            time.sleep(0.5 * (attempt + 1))
            continue
        return resp
    raise AssertionError("unreachable")


def upload(c: Client, assignment: str, path: Path) -> dict[str, Any]:
    """Upload one file; the service's record of it (sha256, size, name, media_type, ...)."""
    if not path.is_file():
        raise ApiError(0, f"evidence {path} is not a file")
    resp = _send(c, assignment, path)
    if resp.status_code >= 400:
        raise _refused(resp)
    return dict(resp.json())


def _uploaded(files: list[dict[str, Any]]) -> None:
    for f in files:
        console().print(f"uploaded {f['name']} ({f['size']} bytes, {f['media_type']}) sha256 {f['sha256']}")


@app.command("upload")
@handled
def upload_cmd(
    assignment: Assignment,
    files: Annotated[list[Path], typer.Argument(help="the files (PDF, pictures, Office, OFD, WPS, zip)")],
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Upload evidence files for an assignment (your unit's)."""
    with Client(Config.load(token)) as c:
        done = [upload(c, assignment, p) for p in files]
    emit(done, as_json, _uploaded)


def _table(data: dict[str, Any]) -> None:
    if not data["items"]:
        console().print(f"no evidence uploaded for {data['assignment_id']}")
        return
    table = Table(title=f"evidence of {data['assignment_id']} ({data['total']})", title_justify="left")
    for col in ("name", "bytes", "type", "sha256", "uploaded by", "at"):
        table.add_column(col, overflow="fold")
    for i in data["items"]:
        table.add_row(
            escape(i["name"]), str(i["size"]), i["media_type"], i["sha256"], i["uploaded_by"], i["uploaded_at"][:19]
        )
    console().print(table)


@app.command("list")
@handled
def list_cmd(assignment: Assignment, token: Token = None, as_json: AsJson = False) -> None:
    """The evidence files uploaded for an assignment."""
    with Client(Config.load(token)) as c:
        data = c.request("progress", "GET", f"/v1/assignments/{assignment}/evidence")
    emit(data, as_json, _table)


def filename_of(disposition: str) -> str | None:
    """The file name of a Content-Disposition header (`filename*=UTF-8''...` first)."""
    star = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition, re.IGNORECASE)
    if star:
        return unquote(star.group(1))
    plain = re.search(r'filename="([^"]*)"', disposition)
    return plain.group(1) if plain else None


def download(c: Client, assignment: str, sha256: str, out: Path | None) -> dict[str, Any]:
    """Save one file (to `out`, else its own name here), checking its hash; what was saved."""
    url = _url(c, assignment, sha256)
    digest, size = hashlib.sha256(), 0
    try:
        with c.http.stream("GET", url, headers=_headers(c)) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise _refused(resp)
            name = filename_of(resp.headers.get("content-disposition", "")) or sha256
            own = Path(name).name  # never a path the service chose
            target = out or Path(own if own not in ("", ".", "..") else sha256)
            partial = target.with_name(target.name + ".partial")
            with partial.open("wb") as f:
                for chunk in resp.iter_bytes(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
    except httpx.HTTPError as exc:
        raise ApiError(0, f"cannot download {url}: {exc}") from exc
    except OSError as exc:
        raise ApiError(0, f"cannot write {exc.filename}: {exc.strerror}") from exc
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ApiError(0, f"the file received for {sha256[:12]}… does not match its hash; nothing was saved")
    partial.replace(target)
    media_type = resp.headers.get("content-type", "")
    return {"path": str(target), "name": name, "sha256": sha256, "size": size, "media_type": media_type}


@app.command("get")
@handled
def get_cmd(
    assignment: Assignment,
    sha256: Annotated[str, typer.Argument(help="the file's sha256 (see `policyflow evidence list`)")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="where to save it (default: its name)")] = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Download an evidence file; its hash is checked before it is saved."""
    with Client(Config.load(token)) as c:
        saved = download(c, assignment, sha256, output)
    emit(saved, as_json, lambda d: console().print(f"saved {d['name']} ({d['size']} bytes) to {d['path']}"))
