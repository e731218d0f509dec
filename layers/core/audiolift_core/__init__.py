"""What both functions share, one module per concept.

Pure (no AWS):
- ``jobs``: the job's states, the legal moves between them (``ALLOWED_SOURCES``), the record.
- ``parts``: how a file is split into upload parts, and what is checked before completing.
- ``uploads``: what a client may upload (formats, extensions, content types, file names).
- ``limits``: upload limits, per-format analysis speed, largest analysable file, cost.
- ``presign``: part URLs re-signed from one botocore signed (SigV4 query signing).
- ``settings``: typed settings, read from the environment in one place.
- ``errors``: audiolift's exceptions, each with a stable code.

Adapters (the only modules that talk to AWS):
- ``aws``: boto3 clients made once per process; botocore error codes, their
  classification, and ``translated`` (where botocore errors become ours).
- ``jobs_table``: the DynamoDB jobs table (conditional writes from ``jobs``).
- ``storage``: the uploads bucket (multipart uploads, part URLs, results).
- ``observability``: Powertools logger and metrics.
"""
