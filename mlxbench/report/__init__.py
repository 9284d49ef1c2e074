"""Reports of recorded runs: savings tables, charts and comparisons, as HTML, Markdown or CSV.

Nothing here runs a benchmark; everything is rendered from the files a run wrote.
"""
