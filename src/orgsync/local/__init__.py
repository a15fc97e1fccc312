"""The embedded local stack: a store, template.yaml's resources, the pipe and the Lambda poller.

Entry point: `orgsync.local.stack.EmbeddedStack`. Never imported on the Lambda path.
"""
