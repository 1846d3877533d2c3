"""Images of any size: tiled inference over a window reader, compact masks in image pixels,
georeferenced outputs (the geo extra: ``pip install 'lang-sam[geo]'``)."""

from lang_sam.tiling.merge import MERGE_IOU, OBJECT_ID_KEY, TileMerger, merge_tiles
from lang_sam.tiling.readers import STRETCH, ArrayReader, RasterReader, TileReader, pixel_boxes
from lang_sam.tiling.segment import segment_everything_tiles, segment_tiles, stream_everything_tiles, stream_tiles
from lang_sam.tiling.windows import OVERLAP, TILE, Window, tile_windows

__all__ = ["MERGE_IOU", "OBJECT_ID_KEY", "OVERLAP", "STRETCH", "TILE", "ArrayReader", "RasterReader", "TileMerger", "TileReader",
           "Window", "merge_tiles", "pixel_boxes", "segment_everything_tiles", "segment_tiles", "stream_everything_tiles", "stream_tiles",
           "tile_windows"]
