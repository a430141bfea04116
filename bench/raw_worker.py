"""`python -m bench.raw_worker ADDRESS TASK_QUEUE`: a worker for the raw Temporal halves.

A process of its own, like the policyflow worker, so both halves pay for the same process hops.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.raw_workflows import EmptyWorkflow, UpdateWorkflow, bench_step


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    worker = Worker(client, task_queue=task_queue, workflows=[EmptyWorkflow, UpdateWorkflow], activities=[bench_step])
    async with worker:
        await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it quietly
        asyncio.run(main(sys.argv[1], sys.argv[2]))
