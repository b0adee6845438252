"""The grading report (``props report``): figures from graded rows (``analysis``) rendered as one
self-contained HTML file with inline SVG charts (``html``)."""
