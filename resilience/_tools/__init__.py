"""What ``python -m resilience`` runs besides ``info``: the benchmarks and the demo.

One concept per module: ``timing`` is the one timing loop everything that
times goes through (the commands here and the pytest-benchmark suite in
``benchmarks/``); ``twins`` loads the compiled and pure cores and builds
policies on either; ``workload`` holds what is timed; ``memory`` measures
bytes; ``bench`` is the targets table, ``peers`` the comparison with other
libraries, ``scaling`` cost against size, idle time and threads; ``plots``
draws them; ``cli`` is the ``bench`` command; ``demo`` is the demo.

``import resilience`` never imports this package.
"""
