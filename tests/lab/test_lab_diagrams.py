"""The course's pictures are drawn from code: every piece is labelled, every state drawn."""

from __future__ import annotations

from matplotlib.figure import Figure

from mini_server.client.states import ChannelState
from mini_server.lab.diagrams import PIECES, pieces


def test_the_pieces_figure_names_every_piece_and_the_wire_format():
    fig = pieces()
    assert isinstance(fig, Figure)
    texts = [text.get_text() for text in fig.axes[0].texts]
    for label, *_ in PIECES:
        assert label in texts, f"{label!r} is not drawn"
    assert any("[join_ref, ref, topic, event, payload]" in text for text in texts)


def test_the_state_machine_figure_draws_every_state_and_event():
    from mini_server.client.states import draw

    ax = draw()
    texts = " ".join(text.get_text() for text in ax.texts)
    for state in ChannelState:
        assert state.value in texts
    for _, event, _ in ChannelState.edges():
        assert event in texts
