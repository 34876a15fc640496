from ..cli.tools import bench

bench()
