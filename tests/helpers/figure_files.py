"""What every figure the workflow writes must be: a PNG over 200 x 200 pixels and a PDF file."""

from PIL import Image


def check_figure_files(png, pdf):
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 200
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"
    assert pdf.stat().st_size > 1000
