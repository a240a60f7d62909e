"""``zerotick top``: a live terminal dashboard read from the services' own endpoints.

The data layer (``promtext``, ``stats``, ``snapshot``, ``view``) collects and computes; ``render``
turns a view into rich tables; ``app`` is the textual application that shows them every second."""
