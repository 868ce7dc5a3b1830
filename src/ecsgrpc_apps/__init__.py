"""Applications built on the ecsgrpc library: the seed's API Gateway and Workflow
Agent (and its client), the demo, the local ECS-like stack and the benchmarks.

The arrow points one way: these import ``ecsgrpc``; ``ecsgrpc`` never imports them.
"""
