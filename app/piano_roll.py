"""The piano-roll figure of one melody (plotly): notes as bars over beats, the primer shaded and coloured, and the
melody's chords (when it has any) as a row of labelled spans along the top.

UI only: it reads `Melody.notes()` and `Melody.chords` and draws; `piano_roll(melody, primer_steps)` is the one
entry point.
"""

from __future__ import annotations

import plotly.graph_objects as go

from melodyrnn.chords import NO_CHORD
from melodyrnn.encoding import Melody
from melodyrnn.lead_sheet import KeySignature, chord_symbol
from melodyrnn.theory import pitch_to_note_name

NOTE_COLOUR = "#1f77b4"
PRIMER_COLOUR = "#ff7f0e"
#: Neighbouring chords alternate between two light shades, so where one ends and the next begins stays visible
#: even when both carry the same colour of text.
CHORD_COLOURS = ("#dde7f3", "#f1e4c9")
#: Height of the chord row, in pixels: one line of 11-pixel text.
CHORD_ROW_PX = 22
# Roots spelled as in C major (C#, Eb, F#, Ab, Bb), as Harte labels spell them: the same everywhere, whatever key
# a few random notes suggest (an estimate can spell a typed "F" as "E#").
_SPELLING = KeySignature(0, "major", "C")
_MARGIN = dict(l=10, r=10, t=24, b=10)


def chord_spans(melody: Melody) -> list[tuple[float, float, str, str]]:
    """The chords to draw: ``(start_beats, end_beats, symbol, Harte label)`` per change, each lasting until the
    next change or the melody's end; "no chord" (``N``) spans are left out. Symbols as a lead sheet writes them
    ("Am", "Bb7", "G7/B")."""
    spq = melody.steps_per_quarter
    ends = [step for step, _ in melody.chords[1:]] + [len(melody)]
    spans = []
    for (start, label), end in zip(melody.chords, ends):
        if label != NO_CHORD and end > start:
            spans.append((start / spq, end / spq, chord_symbol(label, _SPELLING) or label, label))
    return spans


def shade_steps(figure: go.Figure, start: int, end: int, steps_per_quarter: int, colour: str, label: str) -> None:
    """Shades steps [start, end) of a piano roll (x in beats) in `colour`, labelled `label` at its top left."""
    figure.add_vrect(
        x0=start / steps_per_quarter,
        x1=end / steps_per_quarter,
        fillcolor=colour,
        opacity=0.12,
        line_width=0,
        annotation_text=label,
        annotation_position="top left",
    )


def piano_roll(melody: Melody, primer_steps: int = 0, height: int = 240) -> go.Figure:
    """A piano roll of `melody`: x in beats (quarter notes), y in MIDI pitch labelled with note names.

    Args:
        melody: the melody to draw.
        primer_steps: the first `primer_steps` steps came from the primer: their notes are drawn in
            `PRIMER_COLOUR` under a shaded band labelled "primer".
        height: figure height in pixels of the notes' area; a melody with chords gets `CHORD_ROW_PX` more for
            the row of chord spans above it (each span labelled where its label fits, every one in its hover).
    """
    spq = melody.steps_per_quarter
    notes = melody.notes()
    figure = go.Figure()
    for name, colour, chosen in (
        ("primer", PRIMER_COLOUR, [n for n in notes if n[1] < primer_steps]),
        ("generated", NOTE_COLOUR, [n for n in notes if n[1] >= primer_steps]),
    ):
        if not chosen:
            continue
        figure.add_trace(
            go.Bar(
                name=name,
                orientation="h",
                marker_color=colour,
                y=[p for p, _, _ in chosen],
                base=[s / spq for _, s, _ in chosen],
                x=[(e - s) / spq for _, s, e in chosen],
                width=0.85,
                customdata=[pitch_to_note_name(p) for p, _, _ in chosen],
                hovertemplate="%{customdata}  beat %{base:.2f}, %{x:.2f} beats<extra></extra>",
            )
        )
    if primer_steps > 0:
        shade_steps(figure, 0, primer_steps, spq, PRIMER_COLOUR, "primer")
    lo, hi = melody.pitch_range or (60, 72)
    marks = (0, 4, 7) if hi - lo <= 24 else (0,)  # C-E-G in a narrow range, only the Cs in a wide one
    ticks = [p for p in range(lo - 1, hi + 2) if p % 12 in marks]
    beats_per_bar = 4.0 * melody.time_signature[0] / melody.time_signature[1]
    spans = chord_spans(melody)
    if spans:
        height = _add_chord_row(figure, spans, height)
    figure.update_layout(
        height=height,
        margin=_MARGIN,
        barmode="overlay",
        showlegend=primer_steps > 0,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
        xaxis=dict(title=None, range=[0, max(len(melody), 1) / spq], dtick=beats_per_bar, ticksuffix=""),
        yaxis=dict(range=[lo - 1.5, hi + 1.5], tickvals=ticks, ticktext=[pitch_to_note_name(p) for p in ticks]),
    )
    return figure


def _add_chord_row(figure: go.Figure, spans: list[tuple[float, float, str, str]], height: int) -> int:
    """Draws `spans` as a row of shaded, labelled bars on a y axis of their own above the notes; returns the
    figure's new height in pixels (the notes keep theirs)."""
    figure.add_trace(
        go.Bar(
            name="chords",
            orientation="h",
            yaxis="y2",
            y=[0.5] * len(spans),
            base=[start for start, _, _, _ in spans],
            x=[end - start for start, end, _, _ in spans],
            width=1.0,
            marker=dict(color=[CHORD_COLOURS[i % 2] for i in range(len(spans))], line=dict(width=0)),
            text=[symbol for _, _, symbol, _ in spans],
            textposition="inside",
            insidetextanchor="middle",
            textangle=0,  # plotly would turn a label on its side in a narrow span: unreadable at a glance
            textfont=dict(size=11, color="#222"),
            customdata=[label for _, _, _, label in spans],
            hovertemplate="%{text} (%{customdata})  beat %{base:.2f}, %{x:.2f} beats<extra></extra>",
            showlegend=False,
        )
    )
    total = height + CHORD_ROW_PX + 4
    plot = total - _MARGIN["t"] - _MARGIN["b"]  # the plotting area, which the axes' domains divide
    split = 1.0 - (CHORD_ROW_PX + 4) / plot
    figure.update_layout(
        yaxis_domain=[0.0, split],
        yaxis2=dict(domain=[1.0 - CHORD_ROW_PX / plot, 1.0], range=[0, 1], visible=False, fixedrange=True),
        # a label too long for its span is hidden (its hover still names it) rather than shrunk or overlapping
        uniformtext=dict(minsize=8, mode="hide"),
    )
    return total
