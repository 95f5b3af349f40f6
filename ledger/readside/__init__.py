"""The read side: a Datasette over the live file, read-only, configured by metadata.yml.

Read-only holds at three levels:

* Datasette opens the file with ``mode=ro`` for every read (it is served mutable, so it
  sees new rows at once), and ``app.ReadOnlyDatabase`` refuses Datasette's write path
  outright, so no plugin and no canned query can write through it;
* ``metadata.yml`` defines no writable canned query, and ``app.load_metadata`` refuses one;
* the ASGI gate (``gate.py``) answers 405 to every method but GET and HEAD (the login
  form's POST excepted) before Datasette sees the request.

With a password hash configured, the same gate turns away every anonymous request except
the login form and static files, and ``allow`` blocks make Datasette's own permission
checks agree.

``app`` builds the Datasette, ``plugin`` holds its hooks, ``render`` the readable values,
``pages`` the ledger's own pages, ``facets`` the kept facet counts and ``sql_views`` the
views and indexes of the file. Nothing here is imported with the package: the writer
process never loads Datasette.
"""
