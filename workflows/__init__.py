"""Temporal: the assignment workflow, its activities and the worker.

Modules (import the one you need; this package imports nothing itself):

* `workflows.models`      AssignmentInput (start it with this), AssignmentStatus (the `status` query)
* `workflows.workflows`   AssignmentWorkflow, COMMAND_REJECTED (the ApplicationError type of a refusal)
* `workflows.activities`  EventPublisher.publish_events ("publish_events"), load_working_calendar
* `workflows.worker`      build_worker / run_worker / `python -m workflows.worker`
* `workflows.calendar`    working days on China's calendar; `workflows.deadlines` the deadline rules
* `workflows.validation`  why a command is refused (pure)

Starting an assignment and sending it a command::

    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.common import WorkflowIDReusePolicy
    from contracts.commands import UPDATE_ACCEPT, WORKFLOW_NAME, AcceptAssignment, CommandResult
    from contracts.ids import workflow_id
    from contracts.subjects import TASK_QUEUE
    from workflows.models import AssignmentInput, AssignmentStatus

    handle = await client.start_workflow(
        WORKFLOW_NAME, AssignmentInput(spec=spec, created_by=actor),
        id=workflow_id(spec.assignment_id), task_queue=TASK_QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    handle = client.get_workflow_handle(workflow_id(assignment_id))  # no run id: follows continue-as-new
    try:
        result = await handle.execute_update(
            UPDATE_ACCEPT, AcceptAssignment(actor=actor, command_id=request_id), result_type=CommandResult
        )
    except WorkflowUpdateFailedError as err:
        reason = err.cause.message  # ApplicationError, type "CommandRejected": show it to the user (409/422)
    status = await handle.query("status", result_type=AssignmentStatus)

The client needs `data_converter=pydantic_data_converter`.
"""
