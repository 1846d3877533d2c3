"""Small adapters over transformers models, each behind one of the project's interfaces."""
