"""XMP packets: parse safely, read and set properties, serialise, keeping everything else.

Packets come from untrusted photos, so they are parsed with defusedxml with
DTDs forbidden (no entity expansion, no external entities, nothing fetched).
The tree keeps comments and every property photocap does not know; the
serialiser keeps the namespace prefixes the packet used.
About 530 lines on purpose: parsing, reading, setting and serialising one packet share its tree
and namespace bookkeeping; split, each part would reach into the others'.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from photocap.errors import MetadataError
from photocap.metadata.fields import (
    NS_RDF,
    NS_X,
    NS_XML,
    PREFERRED_PREFIXES,
    XmpProperty,
)

RDF = f"{{{NS_RDF}}}RDF"
DESCRIPTION = f"{{{NS_RDF}}}Description"
ALT = f"{{{NS_RDF}}}Alt"
BAG = f"{{{NS_RDF}}}Bag"
SEQ = f"{{{NS_RDF}}}Seq"
LI = f"{{{NS_RDF}}}li"
ABOUT = f"{{{NS_RDF}}}about"
XMPMETA = f"{{{NS_X}}}xmpmeta"
LANG = f"{{{NS_XML}}}lang"
X_DEFAULT = "x-default"

PACKET_BEGIN = "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>"
PACKET_END = "<?xpacket end='w'?>"
MAX_PACKET = 16 * 1024 * 1024
# Real packets nest about ten deep (xmpMM:History > rdf:Seq > rdf:li > stEvt:...); thousands of
# levels are hostile, and would exhaust the stack of every recursive walk over the tree.
MAX_DEPTH = 100


class _TooDeep(Exception):
    pass


class _Builder(ET.TreeBuilder):
    """A tree builder that keeps comments, records the namespace prefixes used, and refuses
    elements nested more than :data:`MAX_DEPTH` deep."""

    def __init__(self) -> None:
        super().__init__(insert_comments=True, insert_pis=True)
        self.prefixes: dict[str, str] = {}
        self.depth = 0

    def start_ns(self, prefix: str, uri: str) -> None:
        self.prefixes.setdefault(uri, prefix)

    def start(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooDeep
        return super().start(tag, attrs)

    def end(self, tag):  # type: ignore[no-untyped-def]
        self.depth -= 1
        return super().end(tag)


@dataclass
class XmpDoc:
    """A parsed XMP packet: the root element and the prefixes its namespaces used."""

    root: ET.Element
    prefixes: dict[str, str] = field(default_factory=dict)


def new_doc(toolkit: str) -> XmpDoc:
    root = ET.Element(XMPMETA, {f"{{{NS_X}}}xmptk": toolkit})
    rdf = ET.SubElement(root, RDF)
    ET.SubElement(rdf, DESCRIPTION, {ABOUT: ""})
    return XmpDoc(root)


def _trim(packet: bytes) -> bytes:
    packet = packet.strip(b"\x00 \t\r\n")
    if packet.startswith(b"\xef\xbb\xbf"):
        packet = packet[3:]
    return packet


def parse(packet: bytes) -> XmpDoc:
    """Parse an XMP packet; MetadataError if it is malformed or uses DTDs/entities."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    if len(packet) > MAX_PACKET:
        raise MetadataError("the XMP packet is implausibly large")
    builder = _Builder()
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(_trim(packet))
        root = parser.close()
    except DefusedXmlException as exc:
        raise MetadataError(
            f"the XMP packet uses DTDs or entities ({type(exc).__name__}); refusing to read it"
        ) from exc
    except ET.ParseError as exc:
        raise MetadataError(f"the XMP packet is not well-formed XML ({exc})") from exc
    except _TooDeep:
        raise MetadataError(
            f"the XMP packet nests elements more than {MAX_DEPTH} deep; refusing to read it"
        ) from None
    except (LookupError, ValueError) as exc:  # expat: an unknown or multi-byte declared encoding
        raise MetadataError(
            f"the XMP packet declares an encoding photocap can't read ({exc}); XMP must be UTF-8"
        ) from exc
    if root.tag != RDF and root.find(f".//{RDF}") is None:
        raise MetadataError("the XMP packet has no rdf:RDF element")
    return XmpDoc(root, builder.prefixes)


# --- the standard shape ---------------------------------------------------------------------


def is_standard(doc: XmpDoc) -> bool:
    """Whether the packet has the shape other tools read: ``rdf:RDF`` at the top, or directly
    inside ``x:xmpmeta`` in the ``adobe:ns:meta/`` namespace. exiftool reads the properties of
    any other wrapper (a corrupt ``xmlns:x``, say) as unknown structures, not as dc:description."""
    root = doc.root
    return root.tag == RDF or (root.tag == XMPMETA and any(child.tag == RDF for child in root))


def wrapper_problem(doc: XmpDoc) -> str | None:
    """Why a non-standard wrapper can't be replaced by the standard one without losing
    something (it holds more than the rdf:RDF element), else None."""
    if is_standard(doc):
        return None
    rdf = _rdf(doc)
    parent = {child: element for element in doc.root.iter() for child in element}
    chain, node = [], rdf
    while node is not doc.root:
        node = parent[node]
        chain.append(node)
    for wrapper in chain:  # from rdf:RDF's parent up to the root: each must hold only the next one down
        elements = [c for c in wrapper if isinstance(c.tag, str)]
        if len(elements) != 1 or (wrapper.text or "").strip() or set(wrapper.attrib) - {f"{{{NS_X}}}xmptk"}:
            return "its XMP packet's wrapper is not the standard x:xmpmeta and holds more than rdf:RDF"
    return None


def make_standard(doc: XmpDoc) -> bool:
    """Put ``doc``'s rdf:RDF in a standard x:xmpmeta wrapper (see :func:`is_standard`); True if
    it was not. MetadataError where that would drop something (:func:`wrapper_problem`)."""
    if is_standard(doc):
        return False
    problem = wrapper_problem(doc)
    if problem is not None:
        raise MetadataError(problem)
    toolkit = doc.root.get(f"{{{NS_X}}}xmptk")
    root = ET.Element(XMPMETA, {f"{{{NS_X}}}xmptk": toolkit} if toolkit else {})
    root.append(_rdf(doc))
    doc.root = root
    # a prefix bound to another namespace in the broken wrapper must not shadow x:
    doc.prefixes = {uri: prefix for uri, prefix in doc.prefixes.items() if prefix != "x" or uri == NS_X}
    return True


# --- reading and setting properties -------------------------------------------------------


def _rdf(doc: XmpDoc) -> ET.Element:
    if doc.root.tag == RDF:
        return doc.root
    rdf = doc.root.find(f".//{RDF}")
    assert rdf is not None  # checked by parse / new_doc
    return rdf


def _descriptions(doc: XmpDoc) -> list[ET.Element]:
    return [child for child in _rdf(doc) if child.tag == DESCRIPTION]


def _key(prop: XmpProperty) -> str:
    return f"{{{prop.namespace}}}{prop.local}"


def _lang_alt_value(element: ET.Element) -> str | None:
    alt = element.find(ALT)
    if alt is None:
        return (element.text or "").strip() or None if len(element) == 0 else None
    items = alt.findall(LI)
    for li in items:
        if li.get(LANG) == X_DEFAULT:
            return li.text or ""
    return (items[0].text or "") if items else None


def get(doc: XmpDoc, prop: XmpProperty) -> str | None:
    """A property's value (a lang-alt's x-default, else its first item), or None."""
    key = _key(prop)
    for desc in _descriptions(doc):
        if key in desc.attrib:
            return desc.attrib[key]
        element = desc.find(key)
        if element is not None:
            if prop.lang_alt:
                return _lang_alt_value(element)
            return element.text if len(element) == 0 else None
    return None


def _set_lang_alt(element: ET.Element, value: str) -> None:
    alt = element.find(ALT)
    if alt is None:
        for child in list(element):
            element.remove(child)
        element.text = None
        element.attrib.clear()
        alt = ET.SubElement(element, ALT)
    for li in alt.findall(LI):
        if li.get(LANG) == X_DEFAULT:
            li.text = value
            return
    li = ET.Element(LI, {LANG: X_DEFAULT})
    li.text = value
    alt.insert(0, li)


def set_value(doc: XmpDoc, prop: XmpProperty, value: str) -> None:
    """Set a property in place where it is, else add it to the first rdf:Description."""
    key = _key(prop)
    descriptions = _descriptions(doc)
    for desc in descriptions:
        if key in desc.attrib:
            if not prop.lang_alt:
                desc.set(key, value)
                return
            del desc.attrib[key]
            _set_lang_alt(ET.SubElement(desc, key), value)
            return
        element = desc.find(key)
        if element is not None:
            if prop.lang_alt:
                _set_lang_alt(element, value)
            else:
                for child in list(element):
                    element.remove(child)
                element.text = value
            return
    if not descriptions:
        descriptions = [ET.SubElement(_rdf(doc), DESCRIPTION, {ABOUT: ""})]
    element = ET.SubElement(descriptions[0], key)
    if prop.lang_alt:
        _set_lang_alt(element, value)
    else:
        element.text = value


def _list_container(element: ET.Element) -> ET.Element | None:
    """A list property's rdf:Bag, or the rdf:Seq some tools write instead; None for a plain value."""
    container = element.find(BAG)
    return container if container is not None else element.find(SEQ)


def get_list(doc: XmpDoc, prop: XmpProperty) -> list[str] | None:
    """The items of a list property (an rdf:Bag, or a Seq some tools write), or None.

    A plain value where a list belongs (``dc:subject="cat"``) reads as one item.
    """
    key = _key(prop)
    for desc in _descriptions(doc):
        if key in desc.attrib:
            return [desc.attrib[key]] if desc.attrib[key].strip() else []
        element = desc.find(key)
        if element is None:
            continue
        container = _list_container(element)
        if container is None:
            return [element.text] if len(element) == 0 and (element.text or "").strip() else []
        return [li.text or "" for li in container.findall(LI)]
    return None


def add_to_list(doc: XmpDoc, prop: XmpProperty, values: list[str]) -> None:
    """Append ``values`` to a list property, after the items already there (left untouched);
    a new property is an rdf:Bag in the first rdf:Description."""
    if not values:
        return
    key = _key(prop)
    descriptions = _descriptions(doc)
    container = None
    for desc in descriptions:
        if key in desc.attrib:  # a plain value: becomes the first item of a Bag
            old = desc.attrib.pop(key)
            element = ET.SubElement(desc, key)
            container = ET.SubElement(element, BAG)
            if old.strip():
                ET.SubElement(container, LI).text = old
            break
        element = desc.find(key)
        if element is None:
            continue
        container = _list_container(element)
        if container is None:
            old_text = element.text if len(element) == 0 else None
            for child in list(element):
                element.remove(child)
            element.text = None
            container = ET.SubElement(element, BAG)
            if old_text and old_text.strip():
                ET.SubElement(container, LI).text = old_text
        break
    if container is None:
        if not descriptions:
            descriptions = [ET.SubElement(_rdf(doc), DESCRIPTION, {ABOUT: ""})]
        container = ET.SubElement(ET.SubElement(descriptions[0], key), BAG)
    for value in values:
        ET.SubElement(container, LI).text = value


def remove(doc: XmpDoc, prop: XmpProperty) -> bool:
    """Remove a property (attribute or element) wherever it is; True if it was there."""
    key = _key(prop)
    found = False
    for desc in _descriptions(doc):
        if key in desc.attrib:
            del desc.attrib[key]
            found = True
        for element in desc.findall(key):
            desc.remove(element)
            found = True
    return found


def _canonical(element: ET.Element) -> tuple:
    text = element.text or ""
    if len(element):
        text = text.strip()
    return (
        str(element.tag),
        tuple(sorted(element.attrib.items())),
        text,
        tuple(_canonical(child) for child in element),
    )


def properties(doc: XmpDoc) -> dict[str, object]:
    """Every top-level property, canonicalised, keyed by ``{namespace}name``: for verification."""
    found: dict[str, object] = {}
    for desc in _descriptions(doc):
        for key, value in desc.attrib.items():
            if key != ABOUT:
                found[key] = value
        for child in desc:
            if isinstance(child.tag, str):
                found.setdefault(child.tag, _canonical(child))
    return found


def key_of(prop: XmpProperty) -> str:
    return _key(prop)


def _alt_langs(element: ET.Element) -> dict[str | None, ET.Element] | None:
    alt = element.find(ALT)
    return None if alt is None else {li.get(LANG): li for li in alt.findall(LI)}


def _comparable(value: ET.Element | str) -> tuple:
    """A property's value, alike for ``a="x"`` and ``<a>x</a>``."""
    if isinstance(value, str):
        return ("text", value)
    if len(value) == 0 and not value.attrib:
        return ("text", value.text or "")
    return ("tree", _canonical(value))


def merge(docs: list[XmpDoc], replaceable: set[str]) -> XmpDoc:
    """One document holding every property of several packets of one file (normally one).

    The first document is kept as it is; each later packet's properties it lacks are added
    to its first rdf:Description.  Two different values of one property are a MetadataError,
    except for the ``replaceable`` keys (about to be overwritten), where the first value wins
    and a later lang-alt's other languages are added to it.
    """
    first = docs[0]
    if len(docs) == 1:
        return first
    target = _descriptions(first)
    home = target[0] if target else ET.SubElement(_rdf(first), DESCRIPTION, {ABOUT: ""})
    have: dict[str, ET.Element | str] = {}
    for desc in _descriptions(first):
        have.update({k: v for k, v in desc.attrib.items() if k != ABOUT})
        have.update({c.tag: c for c in desc if isinstance(c.tag, str) and c.tag not in have})
    for doc in docs[1:]:
        for uri, prefix in doc.prefixes.items():
            first.prefixes.setdefault(uri, prefix)
        for desc in _descriptions(doc):
            props: list[tuple[str, ET.Element | str]] = [
                (k, v) for k, v in desc.attrib.items() if k != ABOUT
            ]
            props += [(c.tag, c) for c in desc if isinstance(c.tag, str)]
            for key, value in props:
                old = have.get(key)
                if old is None:
                    have[key] = value
                    if isinstance(value, str):
                        home.set(key, value)
                    else:
                        home.append(value)
                    continue
                if _comparable(old) == _comparable(value):
                    continue
                if key not in replaceable:
                    raise MetadataError(
                        f"the file has {len(docs)} XMP packets that disagree on {key}; photocap "
                        "won't choose between them (merge them with another tool first)"
                    )
                old_langs = None if isinstance(old, str) else _alt_langs(old)
                new_langs = None if isinstance(value, str) else _alt_langs(value)
                if old_langs is not None and new_langs is not None:
                    alt = old.find(ALT)  # type: ignore[union-attr]
                    for lang, li in new_langs.items():
                        if lang not in old_langs:
                            alt.append(li)  # type: ignore[union-attr]
                            old_langs[lang] = li
    return first


# --- serialising ---------------------------------------------------------------------------


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, local = tag[1:].split("}", 1)
        return uri, local
    return "", tag


def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attribute:
        text = (
            text.replace('"', "&quot;")
            .replace("\n", "&#xA;")
            .replace("\r", "&#xD;")
            .replace("\t", "&#x9;")
        )
    return text


class _Writer:
    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefix_of: dict[str, str] = {NS_XML: "xml"}
        used = {"xml"}
        for uri, prefix in prefixes.items():
            if prefix and prefix not in used and uri not in self.prefix_of:
                self.prefix_of[uri] = prefix
                used.add(prefix)
        self.used = used
        self.out: list[str] = []

    def prefix(self, uri: str) -> str:
        if uri not in self.prefix_of:
            candidate = PREFERRED_PREFIXES.get(uri, "ns")
            name, n = candidate, 1
            while name in self.used:
                name, n = f"{candidate}{n}", n + 1
            self.prefix_of[uri] = name
            self.used.add(name)
        return self.prefix_of[uri]

    def qname(self, tag: str) -> str:
        uri, local = _split(tag)
        return f"{self.prefix(uri)}:{local}" if uri else local

    @staticmethod
    def _namespaces(element: ET.Element, deep: bool) -> list[str]:
        uris: list[str] = []
        for node in element.iter() if deep else [element]:
            if not isinstance(node.tag, str):
                continue
            for name in (node.tag, *node.attrib):
                uri, _ = _split(name)
                if uri and uri != NS_XML and uri not in uris:
                    uris.append(uri)
        return uris

    def write(self, element: ET.Element, depth: int, declared: frozenset[str], hoist: bool) -> None:
        pad = " " * depth
        if element.tag is ET.Comment:
            self.out.append(f"{pad}<!--{element.text or ''}-->\n")
            return
        if element.tag is ET.ProcessingInstruction:
            self.out.append(f"{pad}<?{element.text or ''}?>\n")
            return
        new = [u for u in self._namespaces(element, deep=hoist) if u not in declared]
        declared = declared | set(new)
        parts = [self.qname(element.tag)]
        parts += [f'xmlns:{self.prefix(uri)}="{_escape(uri, True)}"' for uri in new]
        parts += [f'{self.qname(k)}="{_escape(v, True)}"' for k, v in element.attrib.items()]
        head = " ".join(parts)
        children = list(element)
        text = element.text or ""
        if not children:
            if text:
                self.out.append(f"{pad}<{head}>{_escape(text)}</{parts[0]}>\n")
            else:
                self.out.append(f"{pad}<{head}/>\n")
            return
        self.out.append(f"{pad}<{head}>")
        self.out.append(_escape(text) if text.strip() else "")
        self.out.append("\n")
        for child in children:
            child_hoist = element.tag == RDF and child.tag == DESCRIPTION
            self.write(child, depth + 1, declared, child_hoist)
            if child.tail and child.tail.strip():
                self.out.append(_escape(child.tail))
        self.out.append(f"{pad}</{parts[0]}>\n")


def serialize(doc: XmpDoc, *, padding: int = 0) -> bytes:
    """The packet as UTF-8 bytes with an xpacket wrapper and ``padding`` bytes of spaces."""
    writer = _Writer(doc.prefixes)
    writer.write(doc.root, 0, frozenset(), hoist=False)
    body = PACKET_BEGIN + "\n" + "".join(writer.out)
    pad = ""
    if padding > 0:
        line = " " * 99 + "\n"
        pad = (line * (padding // 100 + 1))[:padding]
    return (body + pad + PACKET_END).encode("utf-8")
