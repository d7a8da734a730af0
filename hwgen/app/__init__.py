"""The application layer: the ``hwgen`` command, the demo, the example registry and reports.

It sits on top of everything else: the generator core (:mod:`hwgen` without this package),
the simulator (:mod:`sim`) and the board builds (:mod:`boards`); nothing below imports it
(the import-linter contracts in ``pyproject.toml`` check that). ``import hwgen`` does not
import this package.

* :mod:`hwgen.app.cli`: ``hwgen demo|generate|simulate|estimate|packing|boards|build|inspect``
  (``python -m hwgen.app.cli``); the commands themselves are in :mod:`hwgen.app.commands`;
* :mod:`hwgen.app.demo`: :func:`~hwgen.app.demo.run_demo`, one example end to end;
* :mod:`hwgen.app.examples`: :data:`~hwgen.app.examples.EXAMPLES` and
  :func:`~hwgen.app.examples.train_example`;
* :mod:`hwgen.app.report`: the estimate's table, ``report.json`` and PNG;
* :mod:`hwgen.app.options`, :mod:`hwgen.app.files`, :mod:`hwgen.app.tables`: checking the
  command line's values, writing output files, formatting tables.
"""
