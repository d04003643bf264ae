from sklearn.ensemble import RandomForestClassifier


def model():
    return RandomForestClassifier(n_estimators=30, max_depth=8, random_state=1, n_jobs=2)
