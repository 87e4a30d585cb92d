"""Generation: candidate batches from a teacher (an OpenAI-compatible endpoint or the
offline simulated teacher), robust at scale, resumable, cached and accounted.

Entry points (import from the submodules; this package stays light):

- `curation.generation.params.GenerationParams`: the job parameters.
- `curation.generation.jobs.run_generation(engine, params, api_key=None)`: run in-process.
- job kind "generate" (`curation.generation.jobs`), started with `curation.jobs.start_job`.
- `curation.generation.demo.create_demo_batches(engine)`: the simulated demo batches.
- `curation.generation.templates`: prompt templates; `curation.generation.plan.render_preview`.
- `curation.generation.run.teacher_models(config, api_key=None)`: "test connection".
- `curation.generation.shard` / `shard_child`: a run spread over processes (the coordinator's
  side / the child's entry point, `python -m curation.generation.shard_child`).
- `curation.generation.launch.start_generation / resume_generation`: what the page calls
  (a key typed into the page reaches the worker through its environment only).
"""
