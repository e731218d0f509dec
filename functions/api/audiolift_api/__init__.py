"""The upload API, in FastAPI's "bigger applications" layout.

- ``handler``: the Lambda entry point (API Gateway HTTP API -> Mangum -> the app).
- ``app``: ``create_app()``: middleware, error handlers, the routers.
- ``dependencies``: what routes share: the service, the authenticated caller, the
  caller's job, the error responses of the OpenAPI document.
- ``routers``: ``uploads`` and ``jobs`` (/v1), ``limits`` (/v1/limits), ``companion``
  (Uppy's /s3/multipart).
- ``service``: what the API does, free of HTTP (``UploadService``).
- ``models``: request and response bodies; ``errors``: errors to HTTP, in one table;
  ``auth``: who is calling; ``body_limit``: the request body limit.
"""
