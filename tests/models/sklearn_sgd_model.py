from sklearn.linear_model import SGDClassifier


def model():
    return SGDClassifier(loss="log_loss", random_state=1)
