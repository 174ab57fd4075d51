"""`metrics docs`: a static HTML catalog of the metrics, readable offline (inline CSS and
JS, charts drawn as inline SVG here in Python: no CDN, no JavaScript chart library)."""
