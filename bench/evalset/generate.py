#!/usr/bin/env python3
"""Generate the AttriBoT Studio attribution evaluation set.

HotpotQA-distractor style question answering over FICTIONAL entities: every
person, town, river, lake, company, society, invention and book is invented,
so a model has to read the context instead of recalling facts.

Each example is a context of 4-10 paragraphs (Wikipedia-like mini articles),
a short question, a short answer and the gold sentence(s) that support it.
Contexts also contain distractor sentences that mention the same (or
similar-sounding) entities without answering the question.

Deterministic: everything is drawn from one seeded ``random.Random``.
Standard library only, no network.

    python bench/evalset/generate.py [--out PATH] [--seed N]
"""

# Sentence templates are kept on one line each so that they read as sentences.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

DEFAULT_SEED = 20240611
DEFAULT_OUT = Path(__file__).resolve().parent / "evalset.jsonl"

N_PER_KIND = 14  # 3 kinds -> 42 examples
N_LONG_PER_KIND = 5  # -> 15 long examples

SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")

# Token estimate used throughout: whitespace words x 1.35.
TOKENS_PER_WORD = 1.35
NORMAL_TOKENS = (300, 900)
LONG_MIN_TOKENS = 1600


def est_tokens(text: str) -> int:
    return int(len(text.split()) * TOKENS_PER_WORD)


# ---------------------------------------------------------------------------
# Name pools (all invented; checked by hand to avoid famous real entities)
# ---------------------------------------------------------------------------

FIRST_F = [
    "Ilsa", "Petra", "Wenna", "Maren", "Odile", "Tamsin", "Brisa", "Corra",
    "Elvi", "Fenna", "Greta", "Halle", "Ione", "Juna", "Kessa", "Liora",
    "Mirren", "Nelda", "Orla", "Quilla", "Rhosyn", "Sabeth", "Tilde", "Una",
    "Verity", "Wrenna", "Yselle", "Zora", "Adela", "Berit", "Calla", "Edda",
    "Frida", "Gwenna", "Hesper", "Ilka", "Jessamy", "Katrin", "Lotte",
    "Minna", "Noor", "Oona", "Pella", "Sigrid", "Thea", "Ulla", "Vesna",
    "Willa", "Agnete", "Brenna", "Dagny", "Elska", "Marit", "Solveig",
]
FIRST_M = [
    "Oskar", "Aldo", "Bram", "Caspar", "Dorian", "Emrik", "Florian",
    "Gideon", "Hollis", "Ivo", "Jasper", "Kell", "Lucan", "Matthias",
    "Niall", "Osric", "Piet", "Quentin", "Rafe", "Silas", "Tobin", "Ulric",
    "Valen", "Wystan", "Zeno", "Anselm", "Bertil", "Cormac", "Darrow",
    "Edric", "Falk", "Gunnar", "Hale", "Ivar", "Joren", "Kasimir", "Leif",
    "Magnus", "Nils", "Pascoe", "Roald", "Stellan", "Torvald", "Ulf",
    "Vidar", "Wendel", "Alaric", "Benedek", "Corwin", "Evander",
]
SURNAMES = [
    "Varrow", "Kestlin", "Orrade", "Quillon", "Marsk", "Thennick", "Abernay",
    "Ferrand", "Galloran", "Ilvane", "Jorrick", "Lunder", "Mawbray",
    "Pellow", "Sollis", "Tavener", "Ulvery", "Vesk", "Yarrold", "Ashcombe",
    "Brannock", "Cossart", "Delvin", "Eskdale", "Farrant", "Gilmarten",
    "Hobbard", "Innery", "Jessel", "Kindred", "Lathrop", "Merrivale",
    "Norrish", "Oakley", "Prewett", "Quarrel", "Rudd", "Selwood", "Trevick",
    "Underhay", "Voss", "Wexley", "Yeoland", "Aubery", "Blanchet", "Carrow",
    "Dunstall", "Emberson", "Fairweather", "Grisdale", "Hartnell", "Ivison",
    "Jolliffe", "Kettering", "Lovibond", "Maddock", "Nethercott", "Ormsby",
    "Pilbeam", "Raikes", "Tolliver", "Venning", "Whitlock",
    "Alderson", "Bassenholt", "Drummel", "Elphick", "Fennimore",
    "Goodhew", "Hallowell", "Inchbald", "Jephcott", "Kerslake", "Liddicoat",
    "Mallender", "Nankivell", "Oxenham", "Penhallow", "Quintrell",
    "Rosewarne", "Strelley", "Tregenza", "Uglow", "Vosper", "Winterbourne",
]

TOWNS = [
    "Tressing", "Olmsby", "Harrowick", "Quenmoor", "Brallford", "Dunvale",
    "Fennick", "Hollinsford", "Iskerby", "Lornhaven", "Marrowdale",
    "Neskett", "Orvingham", "Pellick", "Ruskmere", "Sarrowby", "Tullbridge",
    "Vellacombe", "Wrenfold", "Yarrowby", "Asterley", "Brennock", "Corvidge",
    "Eldmoor", "Freyholt", "Galdwick", "Ilmsworth", "Jesterby", "Kaldmere",
    "Mirrowfield", "Ostlake", "Paskerton", "Rimmerby", "Stavenholt",
    "Ulmsted", "Vaskeld", "Wendlecombe", "Aldermoss", "Bexhollow",
    "Cindersby", "Dallowmere", "Eskerholt", "Fallowick", "Gorsemere",
    "Hestleby", "Ivelholt", "Jorvale", "Kettlemoor", "Lammerwick",
    "Mossingham", "Nettlewick", "Oakhallow", "Pennistowe", "Quarrendale",
    "Rookhaven", "Saltrigg", "Thistlebury", "Underwick", "Vennerby",
    "Whistlecombe", "Yewbridge", "Brackwater", "Coldmarsh", "Dunmorrow",
    "Elverstead", "Foxhallow", "Greymantle", "Hallowby", "Ironholt",
    "Kestlemoor", "Larkhollow", "Millbrake", "Pebblecombe", "Ravensholt",
    "Stonacre", "Tarrowby", "Upperwick", "Vintnerby", "Wickenmoor",
    "Amberholt", "Birchwold", "Copperstowe", "Drayholt", "Emberley",
    "Flaxmere", "Glimmerby", "Ivyholt", "Lindenmoor", "Marlowby",
    "Newhallow", "Oxcombe", "Pilgrimsby", "Redbarrow", "Sedgeholt",
    "Tallowmere", "Umberholt", "Alderwick", "Calderwick", "Dovecombe",
    "Everholt", "Farrowdale", "Gullsby", "Heronmere", "Lowmarsh",
    "Mistlecombe",
]
RIVERS = [
    "Quell", "Sarn", "Ebbin", "Tollan", "Marra", "Vennet", "Lisk", "Carrow",
    "Corrin", "Fallow", "Hessel", "Wendle", "Isel", "Ryme", "Oste",
    "Brennet", "Gawl", "Selke", "Velder", "Tamber", "Dwerrow", "Haskett",
    "Pallant", "Sirrel", "Ambrel", "Cowle", "Drisk", "Gildren", "Harle",
    "Kirren", "Nessel", "Orrel", "Pennick", "Rolle", "Ulver", "Vorran",
    "Wissel", "Yarrel", "Lunne", "Torrant",
]
LAKES = [
    "Ormon", "Sedda", "Varrin", "Kelda", "Tuvane", "Hestra", "Mirel",
    "Quarne", "Bellis", "Dorrowen", "Asta", "Lornoe", "Penwyn", "Siskel",
    "Torra", "Uvelle", "Wyndle", "Ysra", "Gallin", "Harrode", "Ottery",
    "Brisk", "Cammel", "Fennow",
]
HILLS = [
    "Greyfold", "Tarnback", "Hollowmere", "Cinderfell", "Ravelscar",
    "Dunsey", "Corriefold", "Sallowback", "Thistlefell", "Ashcrag",
    "Wethercombe", "Brackenfold", "Moorcrag", "Harefell",
]
PROVINCES = [
    "Orveth", "Calmara", "Vessary", "Estmark", "Haverlund", "Kerreth",
    "Marrenland", "Norrest", "Osterlin", "Pallavane", "Quarnesse",
    "Rethmoor", "Sunderlin", "Tavrel", "Ulvenmark", "Westrey",
]
MAKERS = ["Works", "Instruments", "Ironworks", "Foundry", "Clockworks"]
COMPANY_KINDS = {
    "Foundry": "cast iron stoves",
    "Glassworks": "lamp glass and bottles",
    "Mills": "heavy woollen cloth",
    "Instruments": "surveying instruments",
    "Clockworks": "tower clocks",
    "Ropeworks": "ropes and fishing nets",
    "Pottery": "glazed floor tiles",
    "Press": "almanacs and county maps",
    "Shipyard": "fishing boats",
    "Ironworks": "iron gates and railings",
    "Tannery": "saddle leather",
    "Brewing Company": "dark ale",
    "Works": "farm machinery",
    "Paper Mills": "writing paper",
}
INVENTION_ADJ = [
    "reed", "ember", "tallow", "spindle", "lattice", "cinder", "hollow",
    "quill", "thimble", "bramble", "gimbal", "tinker", "shutter", "bellows",
    "coil", "ratchet", "sedge", "drum", "kestrel", "marrow",
]
# Adjective + noun pairs that name real devices; never generated.
REAL_DEVICES = {"gimbal compass", "bellows pump", "ratchet winch", "drum sieve",
                "spindle press", "hand pump", "drum churn", "coil stove",
                "reed pump", "shutter clock", "drum lathe"}
INVENTION_NOUN = [
    "loom", "compass", "kettle", "press", "barometer", "plough", "pump",
    "clock", "lathe", "stove", "scale", "seed drill", "churn", "lamp",
    "winch", "sieve",
]
BOOK_ADJ = [
    "Salt", "Winter", "Glass", "Iron", "Quiet", "Hollow", "Amber", "Copper",
    "Paper", "Silver", "Northern", "Drowned", "Borrowed", "Patient",
    "Lantern", "Thirteenth", "Slow", "Bitter",
]
BOOK_NOUN = [
    "Orchard", "Ledger", "Harbour", "Bell", "Meadow", "Ferry", "Archive",
    "Crossing", "Mill", "Almanac", "Weir", "Quarry", "Lighthouse", "Granary",
    "Tollhouse", "Causeway", "Apiary", "Rookery",
]
SOCIETY_KINDS = {
    # kind: (noun used in the intro, similar-sounding kind)
    "Choral Society": ("amateur choir", "Choral Union"),
    "Choral Union": ("amateur choir", "Choral Society"),
    "Rowing Club": ("rowing club", "Sailing Club"),
    "Sailing Club": ("sailing club", "Rowing Club"),
    "Chess Club": ("chess club", "Draughts Club"),
    "Draughts Club": ("draughts club", "Chess Club"),
    "Naturalists Society": ("natural history society", "Field Club"),
    "Field Club": ("natural history society", "Naturalists Society"),
    "Brass Band": ("amateur band", "Silver Band"),
    "Silver Band": ("amateur band", "Brass Band"),
    "Debating Society": ("debating society", "Literary Society"),
    "Literary Society": ("literary society", "Debating Society"),
}
CRAFTS = ["clockmaker", "printer", "glassblower", "shipwright", "bookbinder",
          "locksmith", "weaver", "blacksmith", "wheelwright", "organ builder",
          "instrument maker", "cabinet maker"]
JOBS = [
    "clockmaker", "engineer", "botanist", "surveyor", "printer",
    "cartographer", "glassblower", "schoolteacher", "architect",
    "shipwright", "composer", "chemist", "astronomer", "instrument maker",
    "bookbinder", "locksmith", "weaver", "mill owner", "lawyer", "physician",
    "blacksmith", "wheelwright", "pharmacist", "organ builder",
]
SUBJECTS = ["mathematics", "chemistry", "botany", "law", "drawing",
            "mechanics", "geology", "music", "surveying", "medicine"]
INDUSTRIES = ["wool", "tanning", "rope making", "brewing", "slate quarrying",
              "paper making", "boat building", "flax spinning", "candle making"]
FESTIVALS = [("lantern", "winter"), ("apple", "autumn"),
             ("sheep shearing", "spring"), ("midsummer", "summer"),
             ("harvest", "autumn"), ("boat", "summer"), ("cheese", "spring"),
             ("wood carving", "summer"), ("bonfire", "winter")]
ITEMS = ["old coins", "embroidered banners", "clay pipes", "brass weights",
         "painted tiles", "school slates", "carved walking sticks"]
ANIMALS = ["stag", "heron", "fox", "ram", "hare", "swan", "owl", "badger"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
            "Saturday"]
SEASONS = ["spring", "summer", "autumn", "winter"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]
SHOPS = ["bakery", "saddlery", "chandlery", "bookshop", "forge",
         "hardware shop", "pharmacy"]
PARTS = ["second spring", "brass regulator", "folding handle",
         "glass cover", "iron counterweight", "leather seal"]
STORY_WHO = [
    "two orphaned sisters", "a young ferryman", "a retired schoolteacher",
    "a lighthouse keeper and his son", "a travelling clock mender",
    "three brothers who inherit a failing mill", "a widowed innkeeper",
]

NUMBER_WORDS = {
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six",
    7: "seven", 8: "eight", 9: "nine", 10: "ten", 11: "eleven",
    12: "twelve", 13: "thirteen", 14: "fourteen", 15: "fifteen",
    16: "sixteen", 17: "seventeen", 18: "eighteen", 19: "nineteen",
    20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty",
    70: "seventy", 80: "eighty", 90: "ninety",
}


def num_word(n: int) -> str:
    if n in NUMBER_WORDS:
        return NUMBER_WORDS[n]
    tens, ones = divmod(n, 10)
    return f"{NUMBER_WORDS[tens * 10]}-{NUMBER_WORDS[ones]}"


def a_an(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def cap(s: str) -> str:
    return s[0].upper() + s[1:]


# ---------------------------------------------------------------------------
# Entity allocation: every name in one example is unique
# ---------------------------------------------------------------------------


class Person:
    def __init__(self, first: str, last: str, g: str, job: str, born: int):
        self.first, self.last, self.g, self.job, self.born = first, last, g, job, born

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def he(self) -> str:
        return "she" if self.g == "f" else "he"

    @property
    def his(self) -> str:
        return "her" if self.g == "f" else "his"

    @property
    def man(self) -> str:
        return "woman" if self.g == "f" else "man"


class Alloc:
    """Hands out fresh, mutually distinct invented names for one example."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.variants: dict[str, set[int]] = {}
        self.province = rng.choice(PROVINCES)

    def _take(self, make) -> str:
        for _ in range(500):
            cand = make()
            if cand not in self.used:
                self.used.add(cand)
                return cand
        raise RuntimeError("name pool exhausted")

    def variant(self, key: str, options: list[str]) -> str:
        """Pick an option not yet used for this key in this example if possible."""
        used = self.variants.setdefault(key, set())
        free = [i for i in range(len(options)) if i not in used] or list(range(len(options)))
        i = self.rng.choice(free)
        used.add(i)
        return options[i]

    def reserve(self, name: str) -> str:
        if name in self.used:
            raise ValueError(f"name clash: {name}")
        self.used.add(name)
        return name

    def year(self, lo: int = 1790, hi: int = 1930) -> int:
        return self.rng.randint(lo, hi)

    def first(self, g: str) -> str:
        return self._take(lambda: self.rng.choice(FIRST_F if g == "f" else FIRST_M))

    def person(self, g: str | None = None, born: int | None = None,
               last: str | None = None, job: str | None = None) -> Person:
        g = g or self.rng.choice("fm")
        first = self.first(g)
        last = last or self._take(lambda: self.rng.choice(SURNAMES))
        return Person(first, last, g, job or self.rng.choice(JOBS),
                      born or self.year(1770, 1880))

    def relative(self, p: Person) -> tuple[Person, str]:
        g = self.rng.choice("fm")
        rel = self.rng.choice(["sister", "cousin"] if g == "f" else ["brother", "cousin"])
        q = Person(self.first(g), p.last, g, self.rng.choice(JOBS),
                   p.born + self.rng.choice([-6, -4, -3, 2, 3, 5, 7]))
        return q, rel

    def town(self) -> str:
        return self._take(lambda: self.rng.choice(TOWNS))

    def river(self) -> str:
        return self._take(lambda: self.rng.choice(RIVERS))

    def lake(self) -> str:
        return "Lake " + self._take(lambda: self.rng.choice(LAKES))

    def hills(self) -> str:
        return self._take(lambda: self.rng.choice(HILLS))

    def other_province(self) -> str:
        return self._take(lambda: self.rng.choice([p for p in PROVINCES if p != self.province]))

    def company(self, kinds=None) -> tuple[str, str]:
        kind = self.rng.choice(list(kinds or COMPANY_KINDS))
        use_surname = self.rng.random() < 0.5
        base = self._take(lambda: self.rng.choice(SURNAMES)) if use_surname else self.town()
        return self.reserve(f"{base} {kind}"), COMPANY_KINDS[kind]

    def similar_company(self, name: str) -> tuple[str, str]:
        """Same first part, different kind: Varrow Foundry -> Varrow Glassworks."""
        for kind in sorted(COMPANY_KINDS, key=len, reverse=True):
            if name.endswith(" " + kind):
                base = name[: -len(kind) - 1]
                break
        else:
            raise ValueError(name)
        kinds = [k for k in COMPANY_KINDS if f"{base} {k}" not in self.used]
        kind = self.rng.choice(kinds)
        return self.reserve(f"{base} {kind}"), COMPANY_KINDS[kind]

    def invention(self) -> str:
        for _ in range(100):
            inv = self._take(lambda: f"{self.rng.choice(INVENTION_ADJ)} {self.rng.choice(INVENTION_NOUN)}")
            if inv not in REAL_DEVICES:
                return inv
        raise RuntimeError("no invention name")

    def similar_invention(self, inv: str) -> str:
        adj, noun = inv.split(" ", 1)
        for _ in range(100):
            cand = self._take(lambda: f"{self.rng.choice(INVENTION_ADJ)} {noun}")
            if cand not in REAL_DEVICES:
                return cand
        raise RuntimeError("no invention name")

    def book(self) -> str:
        return self._take(lambda: f"The {self.rng.choice(BOOK_ADJ)} {self.rng.choice(BOOK_NOUN)}")

    def similar_book(self, b: str) -> str:
        _, adj, noun = b.split(" ")
        if self.rng.random() < 0.5:
            return self._take(lambda: f"The {adj} {self.rng.choice(BOOK_NOUN)}")
        return self._take(lambda: f"The {self.rng.choice(BOOK_ADJ)} {noun}")

    def society(self) -> tuple[str, str, str]:
        town = self.town()
        kind = self.rng.choice(list(SOCIETY_KINDS))
        return self.reserve(f"{town} {kind}"), SOCIETY_KINDS[kind][0], town

    def similar_society(self, name: str) -> tuple[str, str]:
        for kind, (_noun, sim) in SOCIETY_KINDS.items():
            if name.endswith(" " + kind):
                town = name[: -len(kind) - 1]
                return self.reserve(f"{town} {sim}"), SOCIETY_KINDS[sim][0]
        raise ValueError(name)

    def similar_name(self, name: str) -> str:
        """Vowel change in the first syllable: Tressing -> Trassing."""
        swaps = {"a": "e", "e": "a", "i": "e", "o": "a", "u": "o"}
        for i, ch in enumerate(name):
            low = ch.lower()
            if low in swaps:
                new = swaps[low].upper() if ch.isupper() else swaps[low]
                cand = name[:i] + new + name[i + 1:]
                if cand not in self.used and cand not in TOWNS and cand not in RIVERS:
                    return self.reserve(cand)
        raise ValueError(name)


# ---------------------------------------------------------------------------
# Neutral / filler facets per entity type.  Each facet is (tags, function).
# Core articles exclude tags that could interfere with their question.
# Tag "noext" marks sentences that must not get an attribution clause.
# Years inside one article are drawn relative to a base year (birth,
# founding, invention or publication) so that each article is chronologically
# consistent.
# ---------------------------------------------------------------------------

ROUND = ["twenty", "thirty", "forty", "fifty", "sixty"]


def yr(r, base: int, lo: int, hi: int, cap_: int = 1990) -> int:
    return min(cap_, base + r.randint(lo, hi))


def person_intro(r, A, p: Person) -> str:
    return A.variant("person", [
        f"{p.name} was {a_an(p.job)} from the province of {A.province} whose work was admired well beyond the borders of the district.",
        f"{p.name} was {a_an(p.job)} who spent a long and productive career in the towns and villages of {A.province}.",
        f"{p.name} was a self-taught {p.job} whose careful and patient methods influenced a whole generation of younger colleagues.",
        f"{p.name} was {a_an(p.job)} and amateur historian who is still remembered in several small towns of {A.province}.",
    ])


def person_facets(r, A, p: Person, base=None):
    L, b = p.last, p.born
    return [
        ((), lambda: f"{L} was educated at the grammar school in {A.town()} and later studied {r.choice(SUBJECTS)} at the provincial college in {A.town()}."),
        ((), lambda: f"As a young {p.man}, {L} spent several years as an apprentice to {a_an(r.choice(CRAFTS))} in the busy harbour town of {A.town()}."),
        ((), lambda: f"{L} kept detailed notebooks throughout {p.his} life, and more than {r.choice(ROUND)} of them are now held in the provincial archive at {A.town()}."),
        ((), lambda: f"In {yr(r, b, 22, 45)} {L} travelled through the upland villages of {A.other_province()}, making sketches and recording the names of local landmarks."),
        (("family",), lambda: f"{L} married {A.first(r.choice('fm'))} {A._take(lambda: r.choice(SURNAMES))} in {yr(r, b, 21, 34)}, and the couple had {num_word(r.randint(2, 7))} children who all grew up in the family house on the edge of the town."),
        ((), lambda: f"Late in life {L} gave most of {p.his} savings to found a small lending library for the mill workers of {A.town()}."),
        ((), lambda: f"A bronze statue of {L} was unveiled in the market square of {A.town()} in {yr(r, b, 95, 130)}, many years after {p.his} death."),
        ((), lambda: f"{L} was a founding member of the {A.society()[0]}, and served as its secretary for almost twenty years."),
        (("noext",), lambda: f"Contemporaries described {L} as patient and stubborn, and unusually generous toward younger colleagues who needed advice or money."),
        ((), lambda: f"More than three hundred letters written by {L} survive, most of them addressed to {a_an(r.choice(JOBS))} in {A.town()} with whom {p.he} corresponded for decades."),
        ((), lambda: f"In {yr(r, b, 30, 55)} {L} gave a series of public lectures in {A.town()} that were attended by farmers, shopkeepers and schoolchildren alike."),
        (("noext",), lambda: f"Outside of work {L} was a keen gardener who grew rare varieties of apple and pear in a walled garden behind {p.his} house."),
        ((), lambda: f"{L} was deeply interested in local history and wrote several short pamphlets about the old roads, bridges and boundary stones of the district."),
        ((), lambda: f"During a severe outbreak of fever in {yr(r, b, 25, 50)} {L} organised a relief fund and personally delivered food and blankets to poor families in {A.town()}."),
        (("birth",), lambda: f"{p.name} was born in {A.town()} in {b}, the {r.choice(['eldest', 'youngest', 'second'])} of {num_word(r.randint(3, 8))} children."),
        (("death",), lambda: f"{L} died at {p.his} home in {A.town()} in {yr(r, b, 55, 85)} after a short illness."),
    ]


def town_intro(r, A, t: str) -> str:
    return A.variant("town", [
        f"{t} is a small market town in the province of {A.province}, surrounded by low hills and scattered sheep farms.",
        f"{t} is a former mill town in the western part of the province of {A.province}.",
        f"{t} is a quiet town in the province of {A.province} with a population of roughly {num_word(r.randint(3, 19))} thousand people.",
        f"{t} is an old cathedral town in the province of {A.province}, built around a steep hill crowned by a ruined castle.",
    ])


def town_facets(r, A, t: str, base=None):
    return [
        ((), lambda: f"The town holds a weekly market every {r.choice(WEEKDAYS)}, and farmers from the surrounding villages still bring cheese, wool and apples to sell there."),
        ((), lambda: f"The parish church of {t} was rebuilt in {A.year(1700, 1900)} after a fire destroyed most of the original timber roof during a severe winter storm."),
        ((), lambda: "{} is known throughout the region for its {} festival, which takes place each {} and draws visitors from several neighbouring districts.".format(t, *r.choice(FESTIVALS))),
        ((), lambda: f"In the nineteenth century the local economy depended heavily on {r.choice(INDUSTRIES)}, and several large warehouses from that period still stand near the old square."),
        ((), lambda: f"A small museum on the main street displays old farm tools, hand-drawn maps of the district and a collection of {r.choice(ITEMS)} donated by local families."),
        ((), lambda: f"The first school in {t} was opened in {A.year(1760, 1860)}, and for many years it was the only school within a day of travel on foot."),
        ((), lambda: f"The population of {t} fell sharply during the {r.choice(range(1820, 1940, 10))}s, when many younger families left to find work in the larger cities of the coast."),
        ((), lambda: "Most of the houses in the old centre are built from a pale yellow stone that was quarried in the hills a few miles to the east."),
        ((), lambda: f"{t} was granted the right to hold a market in {A.year(1500, 1750)}, and the original charter is still kept in a locked cabinet in the town hall."),
        ((), lambda: f"The town is twinned with {A.town()}, and the two communities exchange groups of schoolchildren every second summer."),
        ((), lambda: f"The clock tower above the town hall contains {num_word(r.randint(3, 12))} bells, which are rung by volunteers on holidays and at weddings."),
        ((), lambda: f"The oldest building in {t} is a timber-framed coaching inn that has served travellers on the road to {A.town()} for more than three centuries."),
        ((), lambda: f"Every autumn the fields around {t} are used for a horse fair, where dealers from across the province buy and sell working horses and ponies."),
        ((), lambda: "A long avenue of lime trees leads from the old market square to the parish church, and it is said to have been planted by the first town council."),
        (("river",), lambda: f"The {A.river()} River flows through {t}, and {num_word(r.randint(2, 9))} stone bridges cross it within the limits of the town."),
        (("lake",), lambda: f"{t} lies on the northern shore of {A.lake()}, and a small ferry still carries passengers to the villages on the far side."),
        (("mayor",), lambda: f"The first mayor of {t} was {A.person().name}, who held the office for {num_word(r.randint(3, 16))} years."),
        (("railway",), lambda: f"The railway reached {t} in {A.year(1840, 1910)}, and the old station building now houses a cafe and a bicycle shop."),
    ]


def company_intro(r, A, c: str, product: str) -> str:
    return A.variant("company", [
        f"{c} is a manufacturing firm best known for its {product}, once found in almost every town of the province of {A.province}.",
        f"{c} is a family-owned business that has made {product} for several generations.",
        f"{c} is one of the oldest manufacturers of {product} in the province of {A.province}.",
    ])


def company_facets(r, A, c: str, product: str, base=None):
    b = base or A.year(1780, 1900)
    return [
        ((), lambda: f"During its busiest years the firm employed more than {num_word(r.randint(2, 9))} hundred workers, many of whom lived in terraced houses built by the company."),
        ((), lambda: f"For almost three decades the company supplied {product} to the provincial railway, until a cheaper competitor won the contract."),
        ((), lambda: f"In {yr(r, b, 10, 60)} a fire at the main workshop destroyed most of the company records, which makes its early history difficult to reconstruct."),
        ((), lambda: f"{c} was one of the first firms in the region to give its workers a paid holiday during the summer harvest."),
        ((), lambda: f"The firm exhibited its {product} at the provincial trade fair in {yr(r, b, 5, 50)}, where it received a silver medal from the judges."),
        ((), lambda: f"The trademark of {c}, {a_an(r.choice(ANIMALS))} standing above a pair of crossed hammers, is still stamped on older pieces that survive in local collections."),
        ((), lambda: "The company trained dozens of apprentices every year, and many of them later opened small workshops of their own."),
        ((), lambda: f"By the end of the century {c} was selling its {product} to merchants in {num_word(r.randint(3, 11))} neighbouring provinces."),
        ((), lambda: f"A long strike in {yr(r, b, 10, 70)} ended only when the owners agreed to shorten the working day by one hour."),
        ((), lambda: "Every finished piece was inspected twice before it left the works, a rule that the firm still follows and mentions in its advertisements."),
        (("founding",), lambda: f"{c} was founded in {b} by {A.person().name}."),
        (("hq",), lambda: f"{c} has its headquarters in {A.town()}, in a red brick building beside the old market hall."),
        (("owner",), lambda: f"In {yr(r, b, 30, 90)} the company was bought by {A.company()[0]}, although it continued to trade under its own name."),
    ]


def river_intro(r, A, rv: str) -> str:
    return A.variant("river", [
        f"The {rv} River is a slow and winding river in the province of {A.province} that rises among the {A.hills()} Hills.",
        f"The {rv} River is a short but fast-flowing river that drains much of the upland country of {A.province}.",
        f"The {rv} River is one of the main rivers of the province of {A.province}, and for centuries it marked the boundary between two rival estates.",
    ])


def river_facets(r, A, rv: str, base=None):
    return [
        ((), lambda: f"Barges carried timber and grain along the lower {rv} until the middle of the nineteenth century, when the railway took away most of the trade."),
        ((), lambda: f"The {rv} is known for its clear water and its trout, which attract anglers from across the province every spring."),
        ((), lambda: f"Several old water mills still stand along the banks of the {rv}, although only one of them is still used to grind flour for local bakers."),
        ((), lambda: f"Severe floods along the river in {A.year(1780, 1950)} destroyed several wooden bridges and led to the construction of a long stone embankment."),
        ((), lambda: f"The reed beds near the mouth of the {rv} are an important resting place for herons, swans and migrating geese."),
        ((), lambda: "According to a local legend, the river was named after a ferryman who drowned while carrying a stranger across in a winter storm."),
        ((), lambda: f"A short canal built in {A.year(1780, 1880)} once linked the {rv} with the quarries in the hills, but it has long since silted up."),
        ((), lambda: f"In dry summers the water level of the {rv} falls so low that children can wade across it at several points without getting their knees wet."),
        (("number",), lambda: f"The river is roughly {num_word(r.randint(12, 95))} miles long from its source to the sea."),
        (("trib",), lambda: f"The largest tributary of the {rv} is the {A.river()} River, which joins it a few miles below the village of {A.town()}."),
        (("flows",), lambda: f"The {rv} River flows through {A.town()} and {A.town()} before it reaches the coast."),
    ]


def lake_intro(r, A, lk: str) -> str:
    return A.variant("lake", [
        f"{lk} is a long and narrow lake in the province of {A.province}, surrounded on three sides by steep wooded slopes.",
        f"{lk} is a shallow lake in the lowlands of {A.province}, fed by several small streams from the surrounding hills.",
        f"{lk} is a deep upland lake in the province of {A.province}, lying in a hollow between two bare ridges.",
        f"{lk} is a reed-fringed lake in the province of {A.province} that is popular with anglers, walkers and painters.",
    ])


def lake_facets(r, A, lk: str, base=None):
    return [
        ((), lambda: f"Fishermen on {lk} still use flat-bottomed wooden boats of a design that has changed very little in two hundred years."),
        ((), lambda: f"A ferry once crossed {lk} several times a day, carrying passengers, livestock and mail between the villages on either shore."),
        ((), lambda: "In very cold winters the lake freezes completely, and the villagers traditionally hold a skating fair on the ice."),
        ((), lambda: f"A small wooded island near the middle of {lk} holds the ruins of a chapel that was abandoned in {A.year(1500, 1800)}."),
        ((), lambda: f"The lake was once famous for its eels, which were smoked in sheds along the shore and sold in markets as far away as {A.town()}."),
        ((), lambda: f"The first accurate map of {lk} was drawn in {A.year(1780, 1900)} by a surveyor who spent an entire summer rowing along its shoreline."),
        ((), lambda: f"On calm summer evenings the surface of {lk} is so still that the surrounding hills are reflected in it almost perfectly."),
        (("number",), lambda: f"The lake is said to be about {num_word(r.randint(20, 90))} metres deep at its deepest point."),
        (("town",), lambda: f"{A.town()} lies on the shore of {lk}."),
    ]


def society_intro(r, A, s: str, noun: str, town: str) -> str:
    return A.variant("society", [
        f"The {s} is {a_an(noun)} that meets every {r.choice(WEEKDAYS)} evening in a hall near the centre of {town}.",
        f"The {s} is one of the oldest voluntary associations in {town}, and it still meets in the rooms above the old corn exchange.",
        f"The {s} is {a_an(noun)} based in {town} that draws its members from the town and the surrounding villages.",
    ])


def society_facets(r, A, s: str, noun: str, base=None):
    b = base or A.year(1800, 1900)
    n = noun.split()[-1]  # choir, club, band or society
    return [
        ((), lambda: f"The {n} holds its annual general meeting each {r.choice(MONTHS)}, when members elect a new chair and review the accounts of the previous year."),
        ((), lambda: "Membership has always been open to anyone over the age of sixteen who is willing to pay a small annual fee."),
        ((), lambda: f"For many years the {n} published a short yearly bulletin, and a nearly complete set of these survives in the town library."),
        ((), lambda: f"During the hard winter of {yr(r, b, 5, 60)} the {n} suspended its meetings for almost three months because the roads were blocked by snow."),
        ((), lambda: f"In {yr(r, b, 5, 60)} the {n} won first prize at a regional competition held in {A.town()}, an event still celebrated at its annual dinner."),
        ((), lambda: f"The {n} moved into its present rooms in {yr(r, b, 10, 70)}, after many years of meeting in the back room of a local inn."),
        ((), lambda: f"The {n} has long relied on small gifts from local businesses to pay for its rent, its lighting and its printed programmes."),
        ((), lambda: f"Every summer the members of the {s} travel together to a different town of the province for a day of visits, talks and a shared meal."),
        (("founding",), lambda: f"The {s} was founded in {b} by {A.person().name}."),
        (("number",), lambda: f"The {s} had {num_word(r.randint(6, 40))} members when it was founded."),
    ]


def invention_intro(r, A, inv: str) -> str:
    return A.variant("invention", [
        f"The {inv} is a device that was widely used in the province of {A.province} during the second half of the nineteenth century.",
        f"The {inv} is an early labour-saving device that became common in the farms and workshops of {A.province} within a generation.",
        f"The {inv} is a simple but ingenious device that is now mostly seen in museums and private collections.",
        f"The {inv} is a hand-operated device that was once found in many farmhouses and small workshops of {A.province}.",
    ])


def invention_facets(r, A, inv: str, base=None):
    b = base or A.year(1790, 1900)
    return [
        ((), lambda: f"The {inv} was valued because it could be repaired with ordinary tools, and a competent blacksmith could replace any worn part in an afternoon."),
        ((), lambda: f"Early versions of the {inv} were heavy and expensive, so at first only the larger estates and workshops could afford one."),
        ((), lambda: f"A working example of the {inv} is displayed at the museum of industry in {A.town()}, where visitors are allowed to try it."),
        ((), lambda: f"By {yr(r, b, 40, 80, 1960)} the {inv} had largely been replaced by cheaper models made from pressed steel."),
        ((), lambda: "The design was widely copied, and at least a dozen small workshops produced their own versions without paying any fee to the inventor."),
        ((), lambda: f"A patent for the {inv} was granted in {yr(r, b, 1, 3)}, but it was challenged in court by a rival workshop almost at once."),
        ((), lambda: f"The {inv} was shown to the public for the first time at a harvest fair in {A.town()}, where it attracted large and curious crowds."),
        ((), lambda: f"Many families kept their {inv} for decades and handed it down from one generation to the next as a valued household possession."),
        (("inventor",), lambda: f"The {inv} was invented by {A.person().name} in {b}."),
        (("maker", "noext"), lambda: f"Today the {inv} is made in small numbers by {A.company(MAKERS)[0]}."),
    ]


def book_intro(r, A, b: str) -> str:
    return A.variant("book", [
        f"{b} is a novel set in a fishing village on the northern coast of the province of {A.province}.",
        f"{b} is a long historical novel about the building of a canal through the hill country of {A.province}.",
        f"{b} is a short novel about a family of ferry keepers on a wide northern river.",
        f"{b} is a novel about the rivalry between two market towns in the hill country of {A.province}.",
    ])


def book_facets(r, A, b: str, base=None):
    y = base or A.year(1820, 1930)
    return [
        (("noext",), lambda: f"The story follows {r.choice(STORY_WHO)} over the course of a single difficult year."),
        (("noext",), lambda: "Critics praised its careful descriptions of weather and landscape, although several of them found the ending abrupt."),
        ((), lambda: f"The novel has been translated into {num_word(r.randint(3, 19))} languages and has rarely been out of print in its home province."),
        (("stage",), lambda: f"A stage version was performed at the theatre in {A.town()} in {yr(r, y, 10, 60)}, with local fishermen appearing as extras."),
        ((), lambda: f"The original manuscript, with many corrections in the margins, is kept in the public library at {A.town()}."),
        ((), lambda: "The first printing sold out within a few weeks, and the publisher had to order a second printing before the end of the year."),
        ((), lambda: f"For several decades {b} was read in schools across the province, and many older readers still remember its opening chapter."),
        (("noext",), lambda: "The final chapter is said to have been rewritten at least six times before the manuscript was sent to the publisher."),
        (("author",), lambda: f"{b} was written by {A.person().name} and first published in {y}."),
    ]


SOURCES = {
    "town": ["a short history of the town published by the parish council",
             "the parish records kept at the time",
             "a survey of the district carried out some years later",
             "the minutes of the old town council",
             "an old guidebook to the district"],
    "person": ["a biography published by the provincial historical society",
               "letters kept by the family",
               "a memoir written by one of the former apprentices",
               "a short obituary in the provincial newspaper",
               "a family history compiled by a great-grandchild"],
    "company": ["a history of the firm printed for its centenary",
                "the surviving account books of the firm",
                "notes kept by a former works manager",
                "reports in the local newspaper of the period",
                "a booklet that the firm printed for its jubilee"],
    "river": ["a survey carried out by the provincial water board",
              "the notes of a local angling club",
              "records kept in the provincial archive",
              "the records of the river board",
              "a guide written for walkers and anglers"],
    "lake": ["a survey made by the provincial water board",
             "the records of the old ferry company",
             "records kept in the provincial archive",
             "a guide written for summer visitors",
             "the notes of a local schoolmaster"],
    "society": ["its own minute books",
                "a short history written for its jubilee",
                "the notes of a long-serving treasurer",
                "a report in the local newspaper",
                "the recollections of its oldest member"],
    "invention": ["a catalogue published by the provincial museum",
                  "trade journals of the period",
                  "an old trade catalogue kept in the provincial archive",
                  "a history of rural machinery written by a local engineer",
                  "the notes of a retired museum curator"],
    "book": ["the records of its first publisher",
             "an essay written by a later editor",
             "a short study published by the provincial library",
             "a review printed in the provincial newspaper",
             "a biography of its author"],
}


def extend(s: str, source: str) -> str:
    """Lengthen a filler sentence with an attribution clause."""
    if "according to" in s.lower() or not s.endswith("."):
        return s
    return s[:-1] + f", according to {source}."


class Article:
    """One paragraph about one subject."""

    def __init__(self, etype: str, intro: str | None, facets, items=None):
        self.etype = etype
        self.intro = intro
        self.facets = facets  # list of (tags, fn) already filtered
        self.items = list(items or [])  # (text, role) role in gold/near/weak

    def min_size(self) -> int:
        return len(self.items) + (1 if self.intro else 0) + (0 if self.items else 1)


def make_subject(r, A, etype: str, exclude=(), subject=None, base=None):
    """Return (intro, facets) for a subject of the given type."""
    ex = set(exclude)

    def keep(fs):
        return [f for f in fs if not (set(f[0]) & ex)]

    if etype == "person":
        p = subject or A.person()
        return person_intro(r, A, p), keep(person_facets(r, A, p))
    if etype == "town":
        t = subject or A.town()
        return town_intro(r, A, t), keep(town_facets(r, A, t))
    if etype == "company":
        c, product = subject or A.company()
        return company_intro(r, A, c, product), keep(company_facets(r, A, c, product, base))
    if etype == "river":
        rv = subject or A.river()
        return river_intro(r, A, rv), keep(river_facets(r, A, rv))
    if etype == "lake":
        lk = subject or A.lake()
        return lake_intro(r, A, lk), keep(lake_facets(r, A, lk))
    if etype == "society":
        s, noun, town = subject or A.society()
        return society_intro(r, A, s, noun, town), keep(society_facets(r, A, s, noun, base))
    if etype == "invention":
        inv = subject or A.invention()
        return invention_intro(r, A, inv), keep(invention_facets(r, A, inv, base))
    if etype == "book":
        b = subject or A.book()
        return book_intro(r, A, b), keep(book_facets(r, A, b, base))
    raise ValueError(etype)


def core_article(r, A, etype, subject, items, exclude=(), intro=True, base=None):
    intro_s, facets = make_subject(r, A, etype, exclude, subject, base)
    return Article(etype, intro_s if intro else None, facets, items)


# ---------------------------------------------------------------------------
# Question templates.  Each returns dict(question, answer, gold, articles).
# strong=True (kind "distractor") adds near-miss sentences.
# ---------------------------------------------------------------------------

ALL_PERSON_EXCL = ("birth", "death", "family")


def t_birthplace(r, A, strong):
    p = A.person()
    t = A.town()
    gold = r.choice([
        f"{p.name} was born in {t} in {p.born}.",
        f"{p.name} was born in the town of {t}.",
        f"{p.name} was born in {t}, where {p.his} father kept a small {r.choice(SHOPS)}.",
    ])
    q = r.choice([f"In which town was {p.name} born?", f"Where was {p.name} born?"])
    items = [(gold, "gold"),
             (f"{p.last} spent most of {p.his} working life in {A.town()}, where {p.he} lived in a narrow house near the harbour.", "weak")]
    if strong:
        sib, rel = A.relative(p)
        items.append((f"{sib.name}, the {'younger' if sib.born > p.born else 'elder'} {rel} of {p.name}, was born in {A.town()}.", "near"))
        items.append((f"{p.last} died in {A.town()} in {p.born + r.randint(50, 80)}.", "near"))
    arts = [core_article(r, A, "person", p, items, ALL_PERSON_EXCL)]
    return dict(question=q, answer=t, gold=[gold], articles=arts)


def t_founded(r, A, strong):
    c, product = A.company()
    y = A.year(1790, 1900)
    founder = A.person(born=y - r.randint(25, 45))
    gold = r.choice([
        f"{c} was founded in {y} by {founder.name}.",
        f"{c} was founded by {founder.name} in {y} in a rented workshop near the river.",
        f"{founder.name} founded {c} in {y} with money borrowed from {founder.his} uncle.",
    ])
    q = r.choice([f"In what year was {c} founded?", f"When was {c} founded?"])
    items = [(gold, "gold"),
             (f"{founder.last} remained in charge of the firm until {y + r.randint(20, 35)}, when {founder.his} eldest son took over.", "weak")]
    arts = []
    if strong:
        items.append((f"{c} opened its second factory in {y + r.randint(8, 25)}.", "near"))
        c2, prod2 = A.similar_company(c)
        f2 = A.person()
        y2 = y + r.choice([-7, -4, -2, 3, 5, 9])
        arts.append(core_article(r, A, "company", (c2, prod2),
                                 [(f"{c2} was founded in {y2} by {f2.name}.", "near")],
                                 ("founding", "owner"), base=y2))
    arts.insert(0, core_article(r, A, "company", (c, product), items, ("founding", "owner"), base=y))
    return dict(question=q, answer=str(y), gold=[gold], articles=arts)


def t_inventor(r, A, strong):
    inv = A.invention()
    p = A.person()
    y = p.born + r.randint(22, 45)
    gold = r.choice([
        f"The {inv} was invented by {p.name} in {y}.",
        f"{p.name}, {a_an(p.job)} from {A.town()}, invented the {inv} in {y}.",
        f"The {inv} was invented in {y} by {p.name}, who was then working in a small rented workshop.",
    ])
    q = r.choice([f"Who invented the {inv}?", f"Who was the inventor of the {inv}?"])
    c, _ = A.company(MAKERS)
    items = [(gold, "gold"),
             (f"The {inv} was first sold in large numbers by {c} in {y + r.randint(5, 15)}.", "weak")]
    arts = []
    if strong:
        p2 = A.person()
        items.append((f"{p2.name} later improved the {inv} by adding {a_an(r.choice(PARTS))}.", "near"))
        inv2 = A.similar_invention(inv)
        p3 = A.person()
        y3 = y + r.choice([-9, -5, 4, 8])
        arts.append(core_article(r, A, "invention", inv2,
                                 [(f"The {inv2} was invented by {p3.name} in {y3}.", "near")],
                                 ("inventor", "maker"), base=y3))
    arts.insert(0, core_article(r, A, "invention", inv, items, ("inventor", "maker"), base=y))
    return dict(question=q, answer=p.name, gold=[gold], articles=arts)


def t_river_through(r, A, strong):
    t = A.town()
    rv = A.river()
    gold = r.choice([
        f"The {rv} River flows through the centre of {t}.",
        f"The {rv} River flows through {t} on its way to the coast.",
        f"The {rv} River flows through {t}, dividing the old town from the newer streets to the south.",
    ])
    q = f"Which river flows through {t}?"
    items = [(gold, "gold")]
    arts = []
    if strong:
        items.append((f"The {A.river()} River rises in the hills a few miles north of {t}.", "near"))
        t2 = A.similar_name(t)
        arts.append(core_article(r, A, "town", t2,
                                 [(f"The {A.river()} River flows through {t2}.", "near")],
                                 ("river", "lake")))
    arts.insert(0, core_article(r, A, "town", t, items, ("river", "lake")))
    # A river article about the gold river that mentions other towns (weak).
    arts.append(core_article(r, A, "river", rv,
                             [(f"Further downstream the {rv} also passes the villages of {A.town()} and {A.town()}.", "weak")],
                             ("flows", "trib")))
    return dict(question=q, answer=f"{rv} River", gold=[gold], articles=arts)


def t_members(r, A, strong):
    s, noun, town = A.society()
    n = r.randint(6, 29)
    y = A.year(1820, 1910)
    gold = r.choice([
        f"The {s} had {num_word(n)} members when it was founded in {y}.",
        f"When it was founded in {y}, the {s} had {num_word(n)} members.",
    ])
    q = r.choice([f"How many members did the {s} have when it was founded?",
                  f"How many founding members did the {s} have?"])
    founder = A.person()
    items = [(gold, "gold"),
             (f"{founder.name} served as the first chair of the {s}.", "weak")]
    arts = []
    if strong:
        items.append((f"By {y + r.randint(15, 40)} the {s} had grown to {num_word(n + r.randint(10, 60))} members.", "near"))
        s2, noun2 = A.similar_society(s)
        arts.append(core_article(r, A, "society", (s2, noun2, town),
                                 [(f"The {s2} had {num_word(n + r.choice([-4, -3, 2, 5, 7]))} members when it was founded.", "near")],
                                 ("founding", "number")))
    arts.insert(0, core_article(r, A, "society", (s, noun, town), items, ("founding", "number"), base=y))
    return dict(question=q, answer=num_word(n), gold=[gold], articles=arts)


def t_author(r, A, strong):
    b = A.book()
    p = A.person(job=r.choice(["schoolteacher", "lawyer", "physician", "printer", "surveyor"]))
    y = p.born + r.randint(25, 50)
    gold = r.choice([
        f"{b} was written by {p.name} and first published in {y}.",
        f"{b} is the best known novel of {p.name}, who wrote it while working as {a_an(p.job)}.",
        f"{p.name} wrote {b} during a long illness and saw it published in {y}.",
    ])
    q = r.choice([f"Who wrote {b}?", f"Who is the author of the novel {b}?"])
    items = [(gold, "gold")]
    excl = ["author", "pubyear", "stage"]
    arts = []
    b_other = A.book()
    arts.append(core_article(r, A, "person", p,
                             [(f"{p.last} also wrote {b_other}, a collection of short stories about life in the hill villages.", "weak")],
                             ALL_PERSON_EXCL))
    if strong:
        items.append((f"The stage version of {b} was written by {A.person().name} and first performed in {y + r.randint(10, 30)}.", "near"))
        b2 = A.similar_book(b)
        arts.append(core_article(r, A, "book", b2,
                                 [(f"{b2} was written by {A.person().name}.", "near")], excl))
    arts.insert(0, core_article(r, A, "book", b, items, excl, base=y))
    return dict(question=q, answer=p.name, gold=[gold], articles=arts)


def t_hq(r, A, strong):
    c, product = A.company()
    t = A.town()
    gold = r.choice([
        f"{c} has its headquarters in {t}.",
        f"The headquarters of {c} are in {t}, in a brick building near the old market hall.",
        f"{c} has had its headquarters in {t} since it moved out of a cramped workshop.",
    ])
    q = r.choice([f"In which town is {c} headquartered?", f"Where does {c} have its headquarters?"])
    items = [(gold, "gold"),
             (f"The firm sells most of its {product} through agents in {A.town()} and {A.town()}.", "weak")]
    arts = []
    if strong:
        items.append((f"{c} runs its largest factory in {A.town()}.", "near"))
        c2, p2 = A.similar_company(c)
        arts.append(core_article(r, A, "company", (c2, p2),
                                 [(f"{c2} has its headquarters in {A.town()}.", "near")],
                                 ("hq", "owner")))
    arts.insert(0, core_article(r, A, "company", (c, product), items, ("hq", "owner")))
    return dict(question=q, answer=t, gold=[gold], articles=arts)


def t_mayor(r, A, strong):
    t = A.town()
    y = A.year(1800, 1900)
    m = A.person(born=y - r.randint(32, 55))
    gold = r.choice([
        f"The first mayor of {t} was {m.name}, who served from {y} to {y + r.randint(3, 14)}.",
        f"{m.name} was elected the first mayor of {t} in {y}.",
    ])
    q = f"Who was the first mayor of {t}?"
    items = [(gold, "gold")]
    arts = []
    if strong:
        items.append((f"The second mayor of {t} was {A.person().name}, {a_an(r.choice(JOBS))} who had moved to the town from the coast.", "near"))
        t2 = A.similar_name(t)
        arts.append(core_article(r, A, "town", t2,
                                 [(f"The first mayor of {t2} was {A.person().name}.", "near")],
                                 ("mayor",)))
    arts.insert(0, core_article(r, A, "town", t, items, ("mayor",)))
    arts.append(core_article(r, A, "person", m,
                             [(f"Before entering public life, {m.last} worked for many years as {a_an(m.job)} in {A.town()}.", "weak")],
                             ALL_PERSON_EXCL))
    return dict(question=q, answer=m.name, gold=[gold], articles=arts)


def t_railway(r, A, strong):
    t = A.town()
    y = A.year(1835, 1905)
    gold = r.choice([
        f"The railway reached {t} in {y}.",
        f"The railway reached {t} in {y}, linking the town to the ports of the coast.",
    ])
    q = f"In what year did the railway reach {t}?"
    items = [(gold, "gold"),
             (f"The railway station at {t} was enlarged in {y + r.randint(20, 45)} to handle the growing trade in livestock.", "weak")]
    arts = []
    if strong:
        items.append((f"A railway to {t} was first proposed in {y - r.randint(8, 20)}, but the plan was abandoned for lack of money.", "near"))
        t2 = A.similar_name(t)
        arts.append(core_article(r, A, "town", t2,
                                 [(f"The railway reached {t2} in {y + r.choice([-6, -3, 2, 4, 9])}.", "near")],
                                 ("railway",)))
    arts.insert(0, core_article(r, A, "town", t, items, ("railway",)))
    return dict(question=q, answer=str(y), gold=[gold], articles=arts)


def t_river_length(r, A, strong):
    rv = A.river()
    n = r.randint(14, 95)
    gold = r.choice([
        f"The {rv} River is about {num_word(n)} miles long.",
        f"From its source to the sea, the {rv} River is about {num_word(n)} miles long.",
    ])
    q = f"How long is the {rv} River?"
    items = [(gold, "gold"),
             (f"The {rv} is navigable by small boats for about {num_word(max(3, n // 3))} miles above its mouth.", "weak")]
    arts = []
    if strong:
        trib = A.river()
        items.append((f"The largest tributary of the {rv}, the {trib} River, is about {num_word(r.randint(5, max(6, n - 4)))} miles long.", "near"))
        rv2 = A.similar_name(rv)
        arts.append(core_article(r, A, "river", rv2,
                                 [(f"The {rv2} River is about {num_word(n + r.choice([-9, -6, 5, 8, 11]))} miles long.", "near")],
                                 ("number", "trib")))
    arts.insert(0, core_article(r, A, "river", rv, items, ("number", "trib")))
    return dict(question=q, answer=f"{num_word(n)} miles", gold=[gold], articles=arts)


# ---- two-hop templates ------------------------------------------------------


def h_inventor_birthplace(r, A, strong):
    inv = A.invention()
    p = A.person()
    t = A.town()
    y = p.born + r.randint(22, 45)
    g1 = r.choice([f"The {inv} was invented by {p.name} in {y}.",
                   f"The {inv} was invented in {y} by {p.name}."])
    g2 = r.choice([f"{p.name} was born in {t} in {p.born}.",
                   f"{p.name} was born in the town of {t}."])
    q = f"In which town was the inventor of the {inv} born?"
    inv_items = [(g1, "gold")]
    p_items = [(g2, "gold"),
               (f"{p.last} later moved to {A.town()}, where {p.he} opened a small workshop.", "weak")]
    arts = []
    if strong:
        p2 = A.person()
        inv_items.append((f"{p2.name}, who improved the {inv} a decade later, was born in {A.town()}.", "near"))
        inv2 = A.similar_invention(inv)
        p3 = A.person()
        arts.append(core_article(r, A, "invention", inv2,
                                 [(f"The {inv2} was invented by {p3.name}, who was born in {A.town()}.", "near")],
                                 ("inventor", "maker")))
    arts[0:0] = [core_article(r, A, "invention", inv, inv_items, ("inventor", "maker"), base=y),
                 core_article(r, A, "person", p, p_items, ALL_PERSON_EXCL)]
    return dict(question=q, answer=t, gold=[g1, g2], articles=arts)


def h_inventor_river(r, A, strong):
    inv = A.invention()
    p = A.person()
    t = A.town()
    rv = A.river()
    g1 = r.choice([f"{p.name}, who invented the {inv}, was born in {t}.",
                   f"{p.name}, the inventor of the {inv}, was born in {t} in {p.born}."])
    g2 = r.choice([f"The {rv} River flows through {t}.",
                   f"The {rv} River flows through the middle of {t}.",
                   f"The {rv} River flows through {t} before it turns south toward the sea."])
    q = f"Which river flows through the town where the inventor of the {inv} was born?"
    p_items = [(g1, "gold")]
    t_items = [(g2, "gold")]
    if strong:
        t2 = A.town()
        p_items.append((f"{p.last} later settled in {t2}, a town on the {A.river()} River.", "near"))
        t_items.append((f"The {A.river()} River rises in the hills above {t}.", "near"))
    else:
        p_items.append((f"{p.last} later settled in {A.town()}, where {p.he} built a larger workshop.", "weak"))
    arts = [core_article(r, A, "person", p, p_items, ALL_PERSON_EXCL),
            core_article(r, A, "town", t, t_items, ("river", "lake"))]
    return dict(question=q, answer=f"{rv} River", gold=[g1, g2], articles=arts)


def h_author_birthyear(r, A, strong):
    b = A.book()
    p = A.person(job=r.choice(["schoolteacher", "lawyer", "physician", "printer", "surveyor"]))
    g1 = r.choice([f"{b} is a novel by {p.name}.", f"{b} was written by {p.name}."])
    g2 = r.choice([f"{p.name} was born in {p.born}.",
                   f"{p.name} was born in {p.born} in the town of {A.town()}."])
    q = f"In what year was the author of {b} born?"
    b_items = [(g1, "gold")]
    p_items = [(g2, "gold"),
               (f"{p.last} worked as {a_an(p.job)} for most of {p.his} adult life and wrote only in the evenings.", "weak")]
    arts = []
    pub = p.born + r.randint(28, 50)
    b_items.append((f"A second edition of {b} appeared in {pub + r.randint(12, 30)} with a new preface.", "weak"))
    if strong:
        b_items.append((f"{b} was first published in {pub}.", "near"))
        ill = A.person(born=p.born + r.choice([-7, -3, 4, 6]))
        b_items.append((f"{ill.name}, who illustrated the first edition of {b}, was born in {ill.born}.", "near"))
    arts[0:0] = [core_article(r, A, "book", b, b_items, ("author", "pubyear"), base=pub),
                 core_article(r, A, "person", p, p_items, ALL_PERSON_EXCL)]
    return dict(question=q, answer=str(p.born), gold=[g1, g2], articles=arts)


def h_product_founder(r, A, strong):
    inv = A.invention()
    c, product = A.company(MAKERS)
    y = A.year(1800, 1900)
    founder = A.person(born=y - r.randint(25, 45))
    g1 = r.choice([f"The {inv} is made by {c}.",
                   f"The {inv} is manufactured by {c} at its works in {A.town()}."])
    g2 = r.choice([f"{c} was founded by {founder.name} in {y}.",
                   f"{founder.name} founded {c} in {y}."])
    q = f"Who founded the company that makes the {inv}?"
    inv_items = [(g1, "gold")]
    c_items = [(g2, "gold"), (f"Apart from the {inv}, {c} also makes {product}.", "weak")]
    arts = []
    if strong:
        c_items.append((f"{A.person().name} became the director of {c} in {y + r.randint(20, 40)}.", "near"))
        inv2 = A.similar_invention(inv)
        c2, _ = A.company(MAKERS)
        arts.append(core_article(r, A, "invention", inv2,
                                 [(f"The {inv2} is made by {c2}, which was founded by {A.person().name}.", "near")],
                                 ("inventor", "maker")))
    arts[0:0] = [core_article(r, A, "invention", inv, inv_items, ("inventor", "maker")),
                 core_article(r, A, "company", (c, product), c_items, ("founding", "owner"), base=y)]
    return dict(question=q, answer=founder.name, gold=[g1, g2], articles=arts)


def h_hq_lake(r, A, strong):
    c, product = A.company()
    t = A.town()
    lk = A.lake()
    g1 = r.choice([f"{c} has its headquarters in {t}.",
                   f"The headquarters of {c} are in {t}."])
    g2 = r.choice([f"{t} lies on the eastern shore of {lk}.",
                   f"{t} lies on the shore of {lk}, at the point where a small stream enters it.",
                   f"{t} lies beside {lk}."])
    q = r.choice([f"Which lake lies beside the town where {c} has its headquarters?",
                  f"On the shore of which lake is the town where {c} has its headquarters?"])
    c_items = [(g1, "gold")]
    t_items = [(g2, "gold")]
    if strong:
        t2 = A.town()
        c_items.append((f"{c} also runs a large warehouse in {t2}, which lies on the shore of {A.lake()}.", "near"))
    else:
        c_items.append((f"{c} also runs a large warehouse in {A.town()}.", "weak"))
    arts = [core_article(r, A, "company", (c, product), c_items, ("hq", "owner")),
            core_article(r, A, "town", t, t_items, ("lake", "river"))]
    lk_items = [(f"Another town on {lk} is {A.town()}, which grew up around a busy landing stage.", "weak")]
    arts.append(core_article(r, A, "lake", lk, lk_items, ("town",)))
    ans = lk
    return dict(question=q, answer=ans, gold=[g1, g2], articles=arts)


def h_birthplace_mayor(r, A, strong):
    p = A.person()
    t = A.town()
    ym = A.year(1790, 1880)
    m = A.person(born=ym - r.randint(32, 55))
    g1 = r.choice([f"{p.name} was born in {t} in {p.born}.",
                   f"{p.name} was born in the town of {t}."])
    g2 = r.choice([f"The first mayor of {t} was {m.name}.",
                   f"{m.name} was elected the first mayor of {t} in {ym}."])
    q = f"Who was the first mayor of the town where {p.name} was born?"
    p_items = [(g1, "gold")]
    t_items = [(g2, "gold")]
    if strong:
        t2 = A.town()
        p_items.append((f"{p.last} spent most of {p.his} adult life in {t2}, whose first mayor was {A.person().name}.", "near"))
        t_items.append((f"The second mayor of {t} was {A.person().name}.", "near"))
    else:
        p_items.append((f"{p.last} spent most of {p.his} adult life in {A.town()}.", "weak"))
    arts = [core_article(r, A, "person", p, p_items, ALL_PERSON_EXCL),
            core_article(r, A, "town", t, t_items, ("mayor",))]
    return dict(question=q, answer=m.name, gold=[g1, g2], articles=arts)


SINGLE_TEMPLATES = [t_birthplace, t_founded, t_inventor, t_river_through,
                    t_members, t_author, t_hq, t_mayor, t_railway, t_river_length]
TWO_HOP_TEMPLATES = [h_inventor_birthplace, h_inventor_river, h_author_birthyear,
                     h_product_founder, h_hq_lake, h_birthplace_mayor]

FILLER_TYPES = ["person", "town", "company", "river", "lake", "society",
                "invention", "book"]


# ---------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------


def split_sizes(r, mins, total, cap_=7):
    sizes = list(mins)
    if sum(sizes) > total or len(sizes) * cap_ < total:
        raise ValueError("infeasible sizes")
    while sum(sizes) < total:
        i = r.randrange(len(sizes))
        if sizes[i] < cap_:
            sizes[i] += 1
    return sizes


def fill_article(r, A, art: Article, size: int, ext_p: float, is_filler: bool):
    """Return the ordered list of (sentence, role) for one paragraph."""
    body = list(art.items)
    golds = [i for i, (_, role) in enumerate(body) if role == "gold"]
    # Sometimes open the paragraph with the gold sentence (it names the
    # subject) and leave out the intro sentence.
    gold_first = bool(art.intro and golds and r.random() < 0.2)
    intro = None if gold_first else art.intro
    need = size - len(body) - (1 if intro else 0)
    facets = list(art.facets)
    r.shuffle(facets)
    if need > len(facets):
        raise ValueError("not enough facets")
    sources = list(SOURCES[art.etype])
    r.shuffle(sources)
    for tags, fn in facets[:need]:
        s = fn()
        if "noext" not in tags and sources and r.random() < ext_p:
            s = extend(s, sources.pop())
        body.append((s, "filler" if is_filler else "neutral"))
    first = body.pop(golds[0]) if gold_first else None
    r.shuffle(body)
    if gold_first:
        body.insert(0, first)
    elif intro:
        body.insert(0, (intro, "intro"))
    return body


def build(r, ex_id, kind, long, tpl):
    A = Alloc(r)
    core = tpl(r, A, strong=(kind == "distractor"))
    arts: list[Article] = core["articles"]
    n_core = len(arts)
    if long:
        n_par = r.choice([8, 9, 9, 10, 10])
        total = r.randint(max(54, 0), min(60, 7 * n_par))
        ext_p = 0.45
    else:
        n_par = r.randint(max(4, n_core + 1), 7)
        total = r.randint(16, 28)
        ext_p = 0.12
    n_fill = n_par - n_core
    if n_fill < 1:
        raise ValueError("too many core articles")
    types = list(FILLER_TYPES)
    r.shuffle(types)
    fill_types = (types * 2)[:n_fill]
    fillers = []
    for et in fill_types:
        intro, facets = make_subject(r, A, et)
        fillers.append(Article(et, intro, facets))
    all_arts = arts + fillers
    mins = [max(2, a.min_size()) for a in all_arts]
    total = max(total, sum(mins))
    sizes = split_sizes(r, mins, total)
    paras = []
    for i, (art, size) in enumerate(zip(all_arts, sizes, strict=True)):
        paras.append(fill_article(r, A, art, size, ext_p, is_filler=i >= n_core))
    r.shuffle(paras)
    context = "\n\n".join(" ".join(s for s, _ in p) for p in paras)
    near = [s for p in paras for s, role in p if role == "near"]
    rec = {
        "id": ex_id,
        "kind": kind,
        "context": context,
        "question": core["question"],
        "answer": core["answer"],
        "gold_sentences": core["gold"],
        "n_paragraphs": len(paras),
        "long": long,
    }
    return rec, near


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

ABBREV = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|St|Mt|Jr|Sr|No|Co|Inc|Ltd|vs|etc|approx|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.|\b[A-Z]\.|\d\.\d")
SENT_SHAPE = re.compile(r"^[A-Z][^.!?]*[.!?]$")


def split_sentences(context: str) -> list[list[str]]:
    return [SENT_SPLIT.split(p) for p in context.split("\n\n")]


def validate(ex: dict) -> None:
    """Raise ValueError if the example breaks any structural rule."""

    def need(cond, msg):
        if not cond:
            raise ValueError(f"{ex.get('id')}: {msg}")

    keys = ["id", "kind", "context", "question", "answer", "gold_sentences",
            "n_paragraphs", "long"]
    need(list(ex) == keys, f"bad keys {list(ex)}")
    ctx = ex["context"]
    need(ctx == ctx.strip(), "leading/trailing whitespace")
    need("\n\n\n" not in ctx, "triple newline")
    need(ctx.isascii(), "non-ASCII context")
    need(not re.search(r"[\"'()\[\]{};]", ctx), "quotes/parentheses in context")
    need(not ABBREV.search(ctx), f"abbreviation/decimal: {ABBREV.search(ctx)}")
    paras = split_sentences(ctx)
    need(all("\n" not in s for p in paras for s in p), "stray newline in paragraph")
    need(len(paras) == ex["n_paragraphs"], "n_paragraphs mismatch")
    need(4 <= len(paras) <= 10, f"{len(paras)} paragraphs")
    for p in paras:
        need(2 <= len(p) <= 7, f"paragraph with {len(p)} sentences")
        need(" ".join(p) == " ".join(p).strip() and "  " not in " ".join(p), "bad spacing")
    sents = [s for p in paras for s in p]
    need(15 <= len(sents) <= 60, f"{len(sents)} sentences")
    for s in sents:
        need(SENT_SHAPE.match(s), f"bad sentence shape: {s!r}")
    need(len(set(sents)) == len(sents), "duplicate sentence")
    kind, gold = ex["kind"], ex["gold_sentences"]
    need(kind in ("single", "two_hop", "distractor"), f"bad kind {kind}")
    lo, hi = {"single": (1, 1), "two_hop": (2, 2), "distractor": (1, 2)}[kind]
    need(lo <= len(gold) <= hi, f"{len(gold)} gold sentences for kind {kind}")
    need(len(set(gold)) == len(gold), "duplicate gold")
    for g in gold:
        need(ctx.count(g) == 1, f"gold occurs {ctx.count(g)} times: {g!r}")
        need(g in sents, f"gold is not a whole sentence: {g!r}")
    need(any(ex["answer"] in g for g in gold), "answer not in gold sentences")
    need(ex["question"].endswith("?") and ex["question"].isascii(), "bad question")
    need(0 < len(ex["answer"].split()) <= 4, "answer too long")
    tok = est_tokens(ctx)
    if ex["long"]:
        need(tok >= LONG_MIN_TOKENS, f"long example only {tok} tokens")
        need(8 <= len(paras) <= 10, "long example needs 8-10 paragraphs")
    else:
        need(NORMAL_TOKENS[0] <= tok <= NORMAL_TOKENS[1], f"normal example {tok} tokens")


def make_example(r, ex_id, kind, long, tpl):
    last = None
    for _ in range(200):
        try:
            rec, near = build(r, ex_id, kind, long, tpl)
            validate(rec)
            if kind == "distractor" and not near:
                raise ValueError("no near-miss sentence")
            if any(rec["answer"] in s for s in near):
                raise ValueError("near-miss contains the answer")
            return rec
        except ValueError as e:  # deterministic retry with the same rng stream
            last = e
    raise RuntimeError(f"could not build {ex_id}: {last}")


def schedule(r):
    plan = []
    for kind in ("single", "two_hop", "distractor"):
        if kind == "single":
            tpls = SINGLE_TEMPLATES * 2
        elif kind == "two_hop":
            tpls = TWO_HOP_TEMPLATES * 3
        else:
            tpls = r.sample(SINGLE_TEMPLATES, 7) + r.sample(TWO_HOP_TEMPLATES, 6) + [r.choice(TWO_HOP_TEMPLATES)]
        tpls = tpls[:N_PER_KIND]
        r.shuffle(tpls)
        longs = [True] * N_LONG_PER_KIND + [False] * (N_PER_KIND - N_LONG_PER_KIND)
        r.shuffle(longs)
        plan += [(kind, lg, t) for t, lg in zip(tpls, longs, strict=True)]
    r.shuffle(plan)
    return plan


def generate(seed: int = DEFAULT_SEED) -> list[dict]:
    r = random.Random(seed)
    out = []
    for i, (kind, lg, tpl) in enumerate(schedule(r), 1):
        out.append(make_example(r, f"ex{i:03d}", kind, lg, tpl))
    for ex in out:
        validate(ex)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    exs = generate(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="ascii", newline="\n") as f:
        for ex in exs:
            f.write(json.dumps(ex, ensure_ascii=True) + "\n")
    kinds = {}
    for ex in exs:
        kinds[ex["kind"]] = kinds.get(ex["kind"], 0) + 1
    print(f"wrote {len(exs)} examples to {args.out} "
          f"({', '.join(f'{k}={v}' for k, v in sorted(kinds.items()))}, "
          f"long={sum(e['long'] for e in exs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
