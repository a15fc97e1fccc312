"""The embedded local stack: a store, template.yaml's resources, the pipe and the Lambda poller.

Entry point: `orgsync.local.stack.LocalStack`. Never imported on the Lambda path (consumer, store).
"""
