"""The genre vocabulary: the genres a model ranks (their ids, the names people read, and what
each pretrained tagger calls them) and the finer styles named beside them. Cards list the genres
a model was trained on; everything else about a genre is read from here.

AudioSet's names come from its ontology (the music-genre classes EfficientAT was trained on);
the Million Song Dataset's from musicnn's last.fm tag list. A tagger's classes are never fitted
to our songs: they are what the tagger already knows about a genre.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Genre:
    """One genre of the vocabulary."""

    id: str  # the JSON id
    name: str  # what replies, charts and docs say
    audioset: tuple[str, ...]  # AudioSet classes that mean it (a segment's score is their max)
    msd: tuple[str, ...] = ()  # musicnn MSD tags that mean it (none: the tagger has no name)
    covers: str = ""  # what the genre takes in, for docs and help


GENRES: Mapping[str, Genre] = {
    genre.id: genre
    for genre in (
        Genre("blues", "Blues", ("Blues",), ("blues",)),
        Genre("classical", "Classical", ("Classical music",), (), "orchestral, chamber, piano"),
        Genre("country", "Country", ("Country",), ("country",)),
        Genre("disco", "Disco", ("Disco",)),
        Genre(
            "electronic",
            "Electronic",
            (
                "Electronic music",
                "House music",
                "Techno",
                "Dubstep",
                "Drum and bass",
                "Electronica",
                "Electronic dance music",
                "Trance music",
                "Ambient music",
            ),
            ("electronic", "electronica", "electro", "dance", "House"),
            "house, techno, EDM, drum and bass, dubstep, trance, ambient",
        ),
        Genre("folk", "Folk", ("Folk music",), ("folk",), "folk, acoustic singer-songwriter"),
        Genre("hiphop", "Hip-hop", ("Hip hop music",), ("Hip-Hop",), "hip-hop, rap, trap"),
        Genre("jazz", "Jazz", ("Jazz",), ("jazz",)),
        Genre(
            "latin",
            "Latin",
            ("Music of Latin America", "Salsa music", "Flamenco"),
            (),
            "salsa, reggaeton, bossa nova, cumbia, flamenco",
        ),
        Genre("metal", "Metal", ("Heavy metal",), ("metal",)),
        Genre("pop", "Pop", ("Pop music",), ("pop",)),
        Genre("reggae", "Reggae", ("Reggae",), (), "reggae, dancehall, dub"),
        Genre(
            "rnb",
            "R&B / soul",
            ("Rhythm and blues", "Soul music", "Funk"),
            ("soul", "rnb", "funk"),
            "R&B, soul, funk",
        ),
        Genre("rock", "Rock", ("Rock music",), ("rock",)),
    )
}
# GTZAN's ten, the vocabulary of the models trained before the wider one.
GTZAN_GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
# The genres added beyond GTZAN's ten.
WIDER_GENRES = tuple(genre for genre in GENRES if genre not in GTZAN_GENRES)


@dataclass(frozen=True)
class Style:
    """A finer name the AudioSet tagger knows: a style of one of our genres (`genre`), or music
    outside all of them (`genre` None)."""

    id: str
    name: str
    audioset: tuple[str, ...]
    genre: str | None


STYLES: Mapping[str, Style] = {
    style.id: style
    for style in (
        Style("house", "house", ("House music",), "electronic"),
        Style("techno", "techno", ("Techno",), "electronic"),
        Style("dubstep", "dubstep", ("Dubstep",), "electronic"),
        Style("drum-and-bass", "drum and bass", ("Drum and bass",), "electronic"),
        Style("trance", "trance", ("Trance music",), "electronic"),
        Style("ambient", "ambient", ("Ambient music",), "electronic"),
        Style("edm", "EDM", ("Electronic dance music",), "electronic"),
        Style("electronica", "electronica", ("Electronica",), "electronic"),
        Style("soul", "soul", ("Soul music",), "rnb"),
        Style("funk", "funk", ("Funk",), "rnb"),
        Style("salsa", "salsa", ("Salsa music",), "latin"),
        Style("flamenco", "flamenco", ("Flamenco",), "latin"),
        Style("punk", "punk", ("Punk rock",), "rock"),
        Style("grunge", "grunge", ("Grunge",), "rock"),
        Style("progressive-rock", "progressive rock", ("Progressive rock",), "rock"),
        Style("psychedelic-rock", "psychedelic rock", ("Psychedelic rock",), "rock"),
        Style("rock-and-roll", "rock and roll", ("Rock and roll",), "rock"),
        Style("bluegrass", "bluegrass", ("Bluegrass",), "country"),
        Style("swing", "swing", ("Swing music",), "jazz"),
        Style("opera", "opera", ("Opera",), "classical"),
        Style("ska", "ska", ("Ska",), "reggae"),
        # Music that none of our genres covers: named, and the answer says it is not one of
        # ours rather than forcing it into the nearest.
        Style("afrobeat", "Afrobeat", ("Afrobeat",), None),
        Style("gospel", "gospel", ("Gospel music", "Christian music"), None),
        Style("bollywood", "Bollywood", ("Music of Bollywood",), None),
        Style("carnatic", "Carnatic music", ("Carnatic music",), None),
        Style("middle-eastern", "Middle Eastern music", ("Middle Eastern music",), None),
        Style("new-age", "new age", ("New-age music",), None),
        Style("childrens", "children's music", ("Music for children",), None),
    )
}

# Labels of data folders that name a style rather than a genre: the genre they train and are
# measured as (a K-pop song is pop to every tagger we have; punk is rock).
LABEL_ALIASES: Mapping[str, str] = {
    **{style.id: style.genre for style in STYLES.values() if style.genre is not None},
    "kpop": "pop",
    "k-pop": "pop",
    "hip-hop": "hiphop",
    "rap": "hiphop",
    "r&b": "rnb",
    "soul": "rnb",
    "edm": "electronic",
    "dancehall": "reggae",
    "reggaeton": "latin",
    "bossa-nova": "latin",
    "cumbia": "latin",
}


def genre_name(genre: str) -> str:
    """What people read for a genre id ("rnb" -> "R&B / soul"); an id outside the vocabulary
    (a model trained on other folders) is shown capitalised."""
    known = GENRES.get(genre)
    return known.name if known is not None else genre.capitalize()


def genre_of_label(label: str) -> str | None:
    """The genre a data folder's label trains as (a genre id, or a style's genre), or None for
    music outside the vocabulary (afrobeat, gospel, lo-fi...)."""
    label = label.strip().casefold()
    if label in GENRES:
        return label
    return LABEL_ALIASES.get(label)
