"""The Discord answer card: what a GenreReply looks like as an embed, within Discord's limits."""

from __future__ import annotations

import discord

from bot.discord.answers import SURE_COLOUR, UNSURE_COLOUR, genre_embed
from bot.replies import GenreReply, build_reply, genre_lines
from classifier.results import Classification, GenreScore, ModelRef, Segment, TagScore


def reply(**changes: object) -> GenreReply:
    fields: dict[str, object] = {
        "title": "Paranoid",
        "url": "https://www.youtube.com/watch?v=abc123",
        "genres": (
            GenreScore("metal", 0.71),
            GenreScore("rock", 0.2),
            GenreScore("hiphop", 0.05),
        ),
        "tags": (),
        "uncertain": False,
        "listened": "Listened to the whole song (2:48).",
        "model": "mfcc-cnn 1.2.0",
    }
    fields.update(changes)
    return GenreReply(**fields)  # type: ignore[arg-type]


def field_values(embed: discord.Embed) -> dict[str, str]:
    return {field.name or "": field.value or "" for field in embed.fields}


def test_embed_links_the_title_and_says_the_verdict() -> None:
    embed = genre_embed(reply())

    assert embed.title == "Paranoid"
    assert embed.url == "https://www.youtube.com/watch?v=abc123"
    assert embed.description is not None
    assert embed.description.startswith("Sounds like Metal.\n")
    assert embed.colour == SURE_COLOUR


def test_embed_lists_the_top_three_genres_with_aligned_bars_and_percentages() -> None:
    answer = reply()
    embed = genre_embed(answer)

    assert embed.description is not None
    block = embed.description.split("```")[1]
    lines = block.strip("\n").splitlines()
    assert lines == genre_lines(answer)  # the shared layout, as every platform shows it
    for line, label, bar, share in zip(
        lines,
        ("Metal", "Rock", "Hip-hop"),
        ("███████▏", "██", "▌"),
        ("71%", "20%", "5%"),
        strict=True,
    ):
        assert line.startswith(label) and bar in line and line.endswith(share)
    assert len({len(line) for line in lines}) == 1  # a monospace block keeps them aligned


def test_embed_shows_what_was_analysed_and_the_model_in_the_footer() -> None:
    embed = genre_embed(reply(listened="Listened to 2:00 of 5:00: 40 stretches spread over it."))

    assert field_values(embed)["Analysed"].startswith("Listened to 2:00 of 5:00")
    assert embed.footer.text == "Model: mfcc-cnn 1.2.0"


def test_tags_appear_only_when_the_model_gives_them() -> None:
    assert "Tags" not in field_values(genre_embed(reply()))

    tagged = genre_embed(reply(tags=(TagScore("guitar", 0.8), TagScore("energetic", 0.6))))

    assert field_values(tagged)["Tags"] == "guitar, energetic"


def test_uncertain_result_says_so_plainly() -> None:
    embed = genre_embed(
        reply(
            genres=(GenreScore("jazz", 0.3), GenreScore("blues", 0.28), GenreScore("pop", 0.1)),
            uncertain=True,
        )
    )

    assert embed.description is not None
    assert embed.description.startswith("Not sure about this one")
    assert "Jazz and Blues" in embed.description
    assert embed.colour == UNSURE_COLOUR


def test_upload_without_a_web_link_has_a_plain_title() -> None:
    embed = genre_embed(reply(title="demo.mp3", url=None))

    assert embed.title == "demo.mp3"
    assert embed.url is None


def test_untitled_song_gets_a_heading_and_odd_urls_are_not_linked() -> None:
    embed = genre_embed(reply(title=None, url="file:///srv/music/demo.mp3"))

    assert embed.title == "Your song"
    assert embed.url is None


def test_very_long_title_is_clipped_to_discords_limit() -> None:
    embed = genre_embed(
        reply(title="la " * 200, tags=tuple(TagScore(f"t{i}", 0.5) for i in range(300)))
    )

    assert embed.title is not None and len(embed.title) == 256 and embed.title.endswith("…")
    assert len(field_values(embed)["Tags"]) <= 1024
    assert len(embed) <= 6000  # Discord's limit for all the text of one embed


def test_embed_from_a_real_classification() -> None:
    result = Classification(
        source="https://example.com/song",
        title="Example",
        duration_s=200.0,
        analysed_s=120.0,
        genres=tuple(
            GenreScore(genre, confidence)
            for genre, confidence in (("disco", 0.5), ("pop", 0.3), ("funk", 0.15), ("rock", 0.05))
        ),
        segments=(Segment(0.0, 3.0, "disco", 0.5),) * 40,
        model=ModelRef("mfcc-cnn", "0.0.1"),
        url="https://example.com/song",
    )

    embed = genre_embed(build_reply(result))

    assert embed.description is not None
    assert embed.description.count("%") == 3  # the top three only
    assert field_values(embed)["Analysed"] == (
        "Listened to 2:00 of 3:20: 40 stretches spread over the whole song."
    )
    assert embed.footer.text == "Model: mfcc-cnn 0.0.1"
    payload = embed.to_dict()
    assert payload["url"] == "https://example.com/song"
