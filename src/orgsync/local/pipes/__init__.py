"""Local emulation of an EventBridge Pipe: DynamoDB stream shards → filter → SQS FIFO target.

`runner.PipeRunner` reads the shards (`shards`), filters (`filter`, moto's EventBridge pattern
matcher), sends (`delivery`, `target`) and checkpoints (`checkpoint`); `thread.PipeThread` runs
it. Nothing here imports the rest of orgsync.local, the CLI or the consumer.
"""
