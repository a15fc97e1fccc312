"""Emulation of Lambda for SQS event sources: the event, context, runtime and the poller.

The poller invokes the very handler the template names; nothing here imports the consumer.
"""
