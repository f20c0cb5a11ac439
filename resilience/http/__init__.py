"""resilience at the HTTP edge: resilient clients and ASGI middleware.

``resilience.http.httpx`` (extra ``httpx``) and ``resilience.http.requests``
(extra ``requests``) retry and guard outgoing calls; ``resilience.http.asgi``
(extra ``asgi``, no dependency) limits, sheds and guards incoming requests.
Each is imported on its own: this package imports nothing, so no client
library is needed to use another part.
"""
