"""Where the running stack keeps its state, for `policyflow admin backup` and `restore`: read from the
same environment as `make up`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("audit", "progress", "assignment", "notify")  # the order their databases are saved in


@dataclass
class Place:
    """Where the running stack keeps its state: read from the same environment as `make up`."""

    var_dir: Path
    databases: dict[str, str]
    key_dir: Path
    evidence_dir: Path | None  # None: an S3 bucket holds the evidence
    nats_url: str | None  # an external NATS (with rights on the stream API); None: the embedded one
    nats_port: int
    temporal_external: bool

    @classmethod
    def from_env(cls, var: Path | None = None) -> Place:
        env = os.environ
        var_dir = (var or Path(env.get("POLICYFLOW_VAR", "var"))).resolve()
        databases = {
            name: env.get(f"{name.upper()}_DATABASE_URL")
            or env.get("DATABASE_URL")
            or f"sqlite:///{var_dir}/{name}.sqlite"
            for name in SERVICES
        }
        evidence = None if env.get("EVIDENCE_S3_BUCKET") else Path(env.get("EVIDENCE_DIR") or var_dir / "evidence")
        return cls(
            var_dir=var_dir,
            databases=databases,
            key_dir=Path(env.get("POLICYFLOW_KEY_DIR") or var_dir / "keys"),
            evidence_dir=evidence,
            nats_url=env.get("NATS_URL") or None,
            nats_port=int(env.get("NATS_PORT", 4333)),
            temporal_external=bool(env.get("TEMPORAL_ADDRESS")),
        )

    @property
    def temporal_db(self) -> Path:
        return self.var_dir / "temporal" / "temporal.sqlite"

    def embedded_nats_url(self, port: int) -> str:
        from deploy.local.servers import nats_passwords, nats_user_url

        return nats_user_url(port, "admin", nats_passwords(self.var_dir / "nats"))
