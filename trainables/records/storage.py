"""Sweep-level files (manifest, spec copy, report) on a local path or a pyarrow filesystem URI (s3://, gs://).

Local paths keep plain `os` semantics. A URI goes through `pyarrow.fs`, the same layer Ray Tune and the results
tables use, so one set of settings reaches all three: for S3 the standard AWS variables (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY or AWS_PROFILE, AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 for MinIO or
another S3-compatible server), or pyarrow options in the URI's query string.

A failing store (unreachable endpoint, missing bucket, access denied) raises StorageError with one line naming
the location and the likely cause, never pyarrow's multi-part message.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from trainables.records import paths

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
FAILURES = (OSError, pa.ArrowException)  # pyarrow's: I/O and network errors, a bad URI or URI option


class StorageError(ValueError):
    pass


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path on it; a URI's query string configures the filesystem."""
    if not paths.is_uri(path):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))
    try:
        return pafs.FileSystem.from_uri(path)
    except FAILURES as e:
        raise StorageError(f"storage {paths.redact(path)}: {reason(e, path)}") from None


def reason(e: BaseException, path: str) -> str:
    """pyarrow's message cut to one line, with a hint for the usual S3 causes."""
    text = " ".join(str(e).split())
    upper = text.upper()
    if "NETWORK_CONNECTION" in upper or "COULD NOT CONNECT" in upper or "COULD NOT RESOLVE" in upper:
        detail = text.rsplit("Details:", 1)[-1].strip() if "Details:" in text else text
        return f"cannot reach the endpoint {endpoint(path)} ({detail})"
    if any(k in upper for k in ("ACCESS_DENIED", "ACCESSDENIED", "INVALID_ACCESS_KEY", "SIGNATURE", "FORBIDDEN")):
        hint = _NO_CREDENTIALS if not _has_credentials() else _CHECK_CREDENTIALS
        return f"access denied at {endpoint(path)} ({_short(text)}); {hint}"
    if path.startswith("s3://") and not _has_credentials():  # some servers answer anonymous requests oddly
        return f"{_short(text)} at {endpoint(path)}; {_NO_CREDENTIALS}"
    return _short(text)


_NO_CREDENTIALS = "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
_CHECK_CREDENTIALS = (
    "check that the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) are valid there"
)


def _has_credentials() -> bool:
    """Credentials the AWS SDK would find without asking a metadata service (which we cannot see from here)."""
    env = os.environ
    if (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")) or env.get("AWS_PROFILE"):
        return True
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") or env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return True
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        return True
    files = [env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), env.get("AWS_CONFIG_FILE", "~/.aws/config")]
    return any(os.path.exists(os.path.expanduser(f)) for f in files)


def _short(text: str) -> str:
    """The AWS error's own words without pyarrow's 'When ... in bucket ...:' preamble."""
    return text.split("AWS Error ", 1)[-1] if "AWS Error " in text else text


def endpoint(path: str) -> str:
    """Where an S3 URI's requests go, and what set it: the user's first clue when they fail."""
    query = paths.split_query(path)[1]
    for option in query[1:].split("&"):
        if option.startswith("endpoint_override="):
            return f"{urllib.parse.unquote(option.split('=', 1)[1])} (endpoint_override in the URI)"
    if not path.startswith("s3://"):
        return "its default endpoint"
    for var in ENDPOINT_VARIABLES:
        if os.environ.get(var):
            return f"{os.environ[var]} (${var})"
    return "AWS's default endpoint"


def _info(path: str) -> pafs.FileInfo:
    fs, p = resolve(path)
    try:
        return fs.get_file_info(p)
    except FAILURES as e:
        raise StorageError(f"{paths.redact(path)}: {reason(e, path)}") from None


def exists(path: str) -> bool:
    return _info(path).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    """A folder; on an object store, a prefix that holds at least one object."""
    return _info(path).type == pafs.FileType.Directory


def is_empty_or_missing(folder: str) -> bool:
    fs, p = resolve(folder)
    try:
        return not fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    except FAILURES as e:
        raise StorageError(f"{paths.redact(folder)}: {reason(e, folder)}") from None


def read_bytes(path: str) -> bytes:
    fs, p = resolve(path)
    try:
        with fs.open_input_stream(p) as f:
            return f.read()
    except FAILURES as e:
        raise StorageError(f"{paths.redact(path)}: {reason(e, path)}") from None


def read_text(path: str) -> str:
    return read_bytes(path).decode()


def write_bytes(path: str, data: bytes) -> None:
    """Replace `path` whole: readers see the old or the new content, never part of it. Locally through a
    temporary file and a rename; an object store's PUT is atomic by itself (and has no cheap rename)."""
    fs, p = resolve(path)
    try:
        if paths.is_uri(path):
            with fs.open_output_stream(p) as f:
                f.write(data)
            return
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = f"{p}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except FAILURES as e:
        raise StorageError(f"{paths.redact(path)}: {reason(e, path)}") from None


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())


def make_dirs(folder: str) -> None:
    """Create a local folder (object stores have no folders: writing an object is enough)."""
    if not paths.is_uri(folder):
        os.makedirs(os.path.abspath(os.path.expanduser(folder)), exist_ok=True)


def upload_dir(local: str, folder: str) -> None:
    """Copy the files of a local folder into `folder` (a local path or URI), replacing those of the same name."""
    if not paths.is_uri(folder):
        shutil.copytree(local, folder, dirs_exist_ok=True)
        return
    fs, p = resolve(folder)
    try:
        pafs.copy_files(local, p, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    except FAILURES as e:
        raise StorageError(f"{paths.redact(folder)}: {reason(e, folder)}") from None


def delete_file(path: str) -> None:
    """Remove a file if it is there."""
    fs, p = resolve(path)
    try:
        if fs.get_file_info(p).type == pafs.FileType.File:
            fs.delete_file(p)
    except FAILURES as e:
        raise StorageError(f"{paths.redact(path)}: {reason(e, path)}") from None


def check_root(storage: str, what: str = "storage") -> None:
    """Fail now, with one line, if sweeps cannot be kept under `storage` (or a report written to it: `what`):
    before Ray starts and the trials each fail with a traceback. A local folder is created if missing, a probe
    file written and removed in it, and the folders created for it removed again. For a URI the bucket must exist, and the credentials at hand must list it and
    write to it (anonymous requests may list a bucket but not write: missing credentials show only here)."""
    if not paths.is_uri(storage):
        _check_local(storage, what)
        return
    fs, root = resolve(storage)
    bucket = root.split("/", 1)[0]
    try:
        if fs.type_name in ("s3", "gcs") and fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            where = f" at {endpoint(storage)}" if fs.type_name == "s3" else ""
            raise StorageError(
                f"{what} {paths.redact(storage)}: bucket {bucket!r} does not exist{where}; create it first"
            )
        fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        _probe_write(fs, root)
    except FAILURES as e:
        raise StorageError(f"{what} {paths.redact(storage)}: {reason(e, storage)}") from None


def _check_local(folder: str, what: str) -> None:
    path = os.path.abspath(os.path.expanduser(folder))
    blocker = path
    while not os.path.exists(blocker) and os.path.dirname(blocker) != blocker:
        blocker = os.path.dirname(blocker)  # the deepest part of the path that exists
    if not os.path.isdir(blocker):
        where = "is a file" if blocker == path else f"cannot be created: {blocker} is a file"
        raise StorageError(f"{what} {folder}: {where}, not a folder")
    made = []  # the folders created here, removed again: a check leaves nothing behind
    missing = path
    while missing != blocker:
        made.append(missing)
        missing = os.path.dirname(missing)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".sparsity-write-check-{uuid.uuid4().hex}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise StorageError(f"{what} {folder}: cannot write there ({e.strerror or e})") from None
    finally:
        for created in made:
            try:
                os.rmdir(created)
            except OSError:
                break


def _probe_write(fs: pafs.FileSystem, root: str) -> None:
    """Write and remove an empty object under the root: raises the store's own error if writing is refused."""
    probe = f"{root.rstrip('/')}/.sparsity-write-check-{uuid.uuid4().hex}"
    with fs.open_output_stream(probe) as f:
        f.write(b"")
    try:
        fs.delete_file(probe)
    except FAILURES:
        pass  # a store that allows writing but not deleting: Ray will say so when it rotates checkpoints
