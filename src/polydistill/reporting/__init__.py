"""Domain-free reporting shared by the grid report (:mod:`polydistill.experiments`) and compress's report card
(:mod:`polydistill.compress`): paired-bootstrap statistics (:mod:`~polydistill.reporting.stats`), Markdown and
LaTeX table helpers (:mod:`~polydistill.reporting.tables`), the named ``<!-- KIND:begin NAME -->`` docs blocks
(:mod:`~polydistill.reporting.docs`) and the figure helpers (:mod:`~polydistill.reporting.plots`). Which rows,
claims and plots a report has stays with its package."""
