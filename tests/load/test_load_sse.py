"""The SSE decoder: frames split, coalesced, long, and in every line-ending style."""

from __future__ import annotations

from load.sse import SseDecoder


def feed_all(chunks: list[bytes]) -> list[bytes]:
    decoder = SseDecoder()
    return [data for chunk in chunks for data, _ in decoder.feed(chunk)]


def test_a_frame_split_byte_by_byte_comes_out_whole() -> None:
    stream = b'data: {"a": 1}\n\ndata: [DONE]\n\n'
    assert feed_all([bytes([b]) for b in stream]) == [b'{"a": 1}', b"[DONE]"]


def test_many_frames_in_one_read_come_out_in_order() -> None:
    stream = b"".join(b"data: %d\n\n" % i for i in range(100))
    assert feed_all([stream]) == [b"%d" % i for i in range(100)]


def test_crlf_and_cr_line_endings_are_frames_too_even_split_between_cr_and_lf() -> None:
    assert feed_all([b"data: a\r\n\r", b"\ndata: b\r\rdata: c\n\n"]) == [b"a", b"b", b"c"]


def test_comments_and_other_fields_are_skipped_and_data_lines_join() -> None:
    stream = b": keep-alive\n\nevent: message\nid: 7\ndata: one\ndata:two\n\n"
    assert feed_all([stream]) == [b"one\ntwo"]


def test_a_frame_of_eight_megabytes_on_one_line_is_not_limited() -> None:
    text = b"x" * (8 * 1024 * 1024)
    chunks = [b"data: " + text[: 3 * 1024 * 1024], text[3 * 1024 * 1024 :] + b"\n\n"]
    assert feed_all(chunks) == [text]


def test_offsets_point_just_past_each_frame_in_the_byte_stream() -> None:
    decoder = SseDecoder()
    first = decoder.feed(b"data: ab\n\ndata: c")
    second = decoder.feed(b"d\n\n")
    assert first == [(b"ab", 10)]
    assert second == [(b"cd", 20)]


def test_finish_returns_an_unterminated_last_frame_and_nothing_when_clean() -> None:
    decoder = SseDecoder()
    decoder.feed(b"data: [DONE]\n")
    assert decoder.finish() == b"[DONE]"
    clean = SseDecoder()
    clean.feed(b"data: x\n\n")
    assert clean.finish() is None
