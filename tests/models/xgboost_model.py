from xgboost import XGBClassifier


def model():
    return XGBClassifier(n_estimators=20, max_depth=4, learning_rate=0.2, tree_method="hist")
