"""The piano-roll figure of one melody (plotly): notes as bars over beats, the primer shaded and coloured.

UI only: it reads `Melody.notes()` and draws; `piano_roll(melody, primer_steps)` is the one entry point.
"""

from __future__ import annotations

import plotly.graph_objects as go

from melodyrnn.encoding import Melody
from melodyrnn.theory import pitch_to_note_name

NOTE_COLOUR = "#1f77b4"
PRIMER_COLOUR = "#ff7f0e"


def piano_roll(melody: Melody, primer_steps: int = 0, height: int = 240) -> go.Figure:
    """A piano roll of `melody`: x in beats (quarter notes), y in MIDI pitch labelled with note names.

    Args:
        melody: the melody to draw.
        primer_steps: the first `primer_steps` steps came from the primer: their notes are drawn in
            `PRIMER_COLOUR` under a shaded band labelled "primer".
        height: figure height in pixels.
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
        figure.add_vrect(
            x0=0,
            x1=primer_steps / spq,
            fillcolor=PRIMER_COLOUR,
            opacity=0.12,
            line_width=0,
            annotation_text="primer",
            annotation_position="top left",
        )
    lo, hi = melody.pitch_range or (60, 72)
    marks = (0, 4, 7) if hi - lo <= 24 else (0,)  # C-E-G in a narrow range, only the Cs in a wide one
    ticks = [p for p in range(lo - 1, hi + 2) if p % 12 in marks]
    beats_per_bar = 4.0 * melody.time_signature[0] / melody.time_signature[1]
    figure.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=24, b=10),
        barmode="overlay",
        showlegend=primer_steps > 0,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
        xaxis=dict(title=None, range=[0, max(len(melody), 1) / spq], dtick=beats_per_bar, ticksuffix=""),
        yaxis=dict(range=[lo - 1.5, hi + 1.5], tickvals=ticks, ticktext=[pitch_to_note_name(p) for p in ticks]),
    )
    return figure
