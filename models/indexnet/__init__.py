"""IndexNet matting (Lu et al., ICCV 2019): the network, its blocks, losses, official import."""
