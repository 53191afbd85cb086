"""One generation run: request (config), input checks (tables), pipeline, streamed writers, evaluation, report."""
