"""The API's routers: /v1/uploads, /v1/jobs and the Companion-compatible /s3/multipart."""
