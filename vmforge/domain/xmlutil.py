"""Tiny lxml helpers shared by the device modules."""

from __future__ import annotations

from lxml import etree

Element = etree._Element


def sub(parent: Element, tag: str, text: str | None = None, **attrs: str | int | None) -> Element:
    """Append ``<tag attrs>text</tag>``; attributes whose value is None are left out.

    Attribute names use '_' for '-' (``sub(x, "timer", tickpolicy="catchup")``).
    """
    child = etree.SubElement(parent, tag)
    for key, value in attrs.items():
        if value is not None:
            child.set(key.rstrip("_").replace("_", "-"), str(value))
    if text is not None:
        child.text = text
    return child


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def on_off(value: bool) -> str:
    return "on" if value else "off"
