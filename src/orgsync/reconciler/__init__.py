"""The reconcile Lambda function of the state machine (template.yaml `ReconcileStateMachine`).

A distributed run of `orgsync reconcile` on AWS: the state machine's Distributed Maps invoke
`handler.lambda_handler` once per slice (`events.SliceEvent`), then once to merge the slices'
reports from the maps' ResultWriter files in S3 (`events.MergeEvent`, `results`). The slicing,
auditing and repairing are `orgsync.ops.reconcile`'s, exactly as `orgsync reconcile` runs them.
"""
