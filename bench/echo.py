"""A workflow that only answers an update, run in the benchmark's own process: what one update
round trip costs the dev server and the SDK with no work behind it, the floor under mode 5.

In a module of its own: the workflow sandbox re-imports the module that defines a workflow,
and must not find the benchmark's entry point there.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="BenchEcho")
class EchoWorkflow:
    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)

    @workflow.update(name="echo")
    def echo(self, value: int) -> int:
        return value

    @workflow.signal(name="done")
    def done(self) -> None:
        self._done = True
