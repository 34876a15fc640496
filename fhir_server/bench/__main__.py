from ..cli import bench

bench()
