"""A pack: trials of one shape that train together as one Tune trial. Its members stay ordinary Trials, with
the ids, config hashes and rows they would have unpacked; the pack only decides how they run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from trainables.records import paths, storage
from trainables.trial import Trial


@dataclasses.dataclass(frozen=True)
class Pack:
    pack_id: str
    members: tuple[Trial, ...]

    @property
    def sweep_dir(self) -> str:
        return self.members[0].sweep_dir

    def to_json(self) -> str:
        """Fields all members share once, then what differs per member (a 1,000-member pack stays small)."""
        rows = [m.to_dict() for m in self.members]
        common = {k: v for k, v in rows[0].items() if all(r[k] == v for r in rows[1:])}
        own = [{k: v for k, v in r.items() if k not in common} for r in rows]
        return json.dumps({"pack_id": self.pack_id, "common": common, "members": own}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Pack:
        data = json.loads(text)
        members = tuple(Trial.from_dict({**data["common"], **own}) for own in data["members"])
        return cls(data["pack_id"], members)


def pack_id(members: list[Trial]) -> str:
    """A stable name from the members' ids: the same members always form the same pack."""
    digest = hashlib.md5("\n".join(sorted(m.trial_id for m in members)).encode()).hexdigest()
    return f"pack-{members[0].method}-{len(members)}-{digest[:10]}"


def save(pack: Pack) -> None:
    storage.write_text(paths.pack_file(pack.sweep_dir, pack.pack_id), pack.to_json())


def load(sweep_dir: str, pack_id: str) -> Pack:
    return Pack.from_json(storage.read_text(paths.pack_file(sweep_dir, pack_id)))


def member_config(pack: Pack) -> dict[str, Any]:
    """What a pack's Tune trial carries: its name and where to read its members (Tune's state stays small)."""
    return {"pack_id": pack.pack_id, "sweep_dir": pack.sweep_dir, "size": len(pack.members)}
