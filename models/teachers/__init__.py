"""Teachers: COCO-trained person sources that label unlabelled video offline (paper V-B)."""
