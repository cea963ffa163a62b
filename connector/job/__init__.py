"""Job: one run over many projects, ``run(config) -> RunReport``.

``pipeline`` is the one way through (settings -> source -> shape -> lake); ``admission`` and
``memory`` decide how many projects read at once; ``progress`` and ``logs`` tell a person
what happens; ``report`` is what a run did; ``check`` is the dry run (reach each project,
write nothing). Named ``job`` because ``connector.run`` is the public function.
"""
