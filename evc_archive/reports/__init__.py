"""Reports people look at: the archive report (HTML) and the codec comparison."""
