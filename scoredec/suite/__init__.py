"""`scoredec suite`: the results grid method x task x quality x seed, one JSON per cell, and
the table and plots made from those cells (issue 6; DESIGN.md 4 "Learning figures").

    presets.py   the smoke / cpu / paper presets (sizes, steps, beta per quality), one place
    grid.py      cells, their keys, shards, which cells are done
    run_cell.py  one cell: dataset -> train via the method registry -> evaluate -> cell JSON
    table.py     results/TABLE.md from the cell JSONs
    plots.py     bars per task and learning curves
"""
