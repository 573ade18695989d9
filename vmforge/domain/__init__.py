"""libvirt domain XML from a small typed object model (one module per device family).

``build.build_domain(plan, shape, ...)`` turns a plan into a :class:`model.Domain`;
``Domain.to_xml()`` writes it with lxml in a fixed element order, so output is stable.
"""
