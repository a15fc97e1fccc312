"""Pure codecs, one per table and one for the stream (docs/design.md §1): keys, users,
organizations, stream. Standard library and the domain only; the Lambda artifact carries them.
"""
