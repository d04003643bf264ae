def build_model(idim):
    return None
